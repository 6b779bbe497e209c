/**
 * A node from before the short join path, for version-skew tests: a relay in front of a real
 * node that passes every request and event through, except that its strict schemas do not know
 * `join.transport` or `consume.paused` and refuse them with BAD_REQUEST, as the older node's zod
 * schemas did. Rolling upgrades serve new pages while some nodes are still old.
 */
import { signalingRelay } from './signalingRelay.js';

export interface OlderNode {
  url: string;
  /** Requests refused for carrying fields the older node did not know. */
  refused: string[];
  close(): Promise<void>;
}

const unknownTo: Record<string, string> = { join: 'transport', consume: 'paused' };

export async function olderNode(target: string): Promise<OlderNode> {
  const refused: string[] = [];
  const relay = await signalingRelay(target, {
    refuse(method, payload) {
      const field = unknownTo[method];
      if (!field || typeof payload !== 'object' || payload === null || !(field in payload)) return undefined;
      refused.push(method);
      return { ok: false, error: { code: 'BAD_REQUEST', message: `payload: Unrecognized key: "${field}"`, retryable: false } };
    },
  });
  return { url: relay.url, refused, close: () => relay.close() };
}
