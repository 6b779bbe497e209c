/** What a load-generator process asks of one listener, whichever WebRTC stack it runs on. */
import type { ListenerProcConfig, ListenerResult } from './messages.js';

export interface BenchPeer {
  /** Global listener index: its place in the stagger schedule. */
  readonly index: number;
  readonly result: ListenerResult;
  /** Resolves once the listener hears the broadcast, fails, or times out. Never rejects. */
  start(): Promise<ListenerResult>;
  /** Start of the steady-state window: snapshot receive counters. */
  baseline(): Promise<void>;
  /** End of the window: fill packetsReceived/packetsLost/jitterMs (or mark dropped). */
  finish(): Promise<void>;
  close(): Promise<void>;
}

export type BenchPeerFactory = (index: number, config: ListenerProcConfig) => BenchPeer;
