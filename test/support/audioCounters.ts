/**
 * A listener's audio as its player experienced it, from libwebrtc's inbound-rtp statistics: what
 * arrived, what never did, and what NetEq played out — real or made up (concealed) — and how
 * long samples waited in its jitter buffer. Cumulative since the stream began; compare two reads.
 */
import type { ChorusClient } from '../../src/client/chorusClient.js';

export interface AudioCounters {
  received: number;
  /** Packets never received (none is resent: browsers do not negotiate NACK for audio). */
  lost: number;
  /** Samples NetEq played out, real or concealed. */
  samples: number;
  /** Samples NetEq made up because the real ones were missing (its packet-loss concealment). */
  concealed: number;
  concealmentEvents: number;
  jitterBufferDelayS: number;
  jitterBufferEmitted: number;
}

const none: AudioCounters = { received: 0, lost: 0, samples: 0, concealed: 0, concealmentEvents: 0, jitterBufferDelayS: 0, jitterBufferEmitted: 0 };

export async function audioCounters(client: ChorusClient): Promise<AudioCounters> {
  const transport = client.transport;
  if (!transport || transport.closed) return none;
  for (const stat of ((await transport.getStats()) as Map<string, Record<string, unknown>>).values()) {
    if (stat['type'] !== 'inbound-rtp' || (stat['kind'] ?? stat['mediaType']) !== 'audio') continue;
    const n = (key: string): number => Number(stat[key] ?? 0);
    return {
      received: n('packetsReceived'),
      lost: n('packetsLost'),
      samples: n('totalSamplesReceived'),
      concealed: n('concealedSamples'),
      concealmentEvents: n('concealmentEvents'),
      jitterBufferDelayS: n('jitterBufferDelay'),
      jitterBufferEmitted: n('jitterBufferEmittedCount'),
    };
  }
  return none;
}

/** The change between two reads of several listeners, summed: what happened in a window. */
export function audioWindow(before: AudioCounters[], after: AudioCounters[]): AudioCounters {
  const sum = (key: keyof AudioCounters): number => after.reduce((s, a, i) => s + a[key] - (before[i]?.[key] ?? 0), 0);
  return {
    received: sum('received'),
    lost: sum('lost'),
    samples: sum('samples'),
    concealed: sum('concealed'),
    concealmentEvents: sum('concealmentEvents'),
    jitterBufferDelayS: sum('jitterBufferDelayS'),
    jitterBufferEmitted: sum('jitterBufferEmitted'),
  };
}

/** Handed to test/support/listenersProcess.ts as its single argument (JSON). */
export interface ListenersProcessConfig {
  url: string;
  roomId: string;
  /** Tokens, one per listener (the process cannot mint: the test or bench holds the secret). */
  tokens: string[];
  /** The process leaves by itself after this long, whatever happened to its parent. */
  maxLifetimeMs: number;
}
