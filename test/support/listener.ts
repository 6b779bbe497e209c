import type { ChorusNode } from '../../src/app.js';
import type { ChorusClient, ChorusClientOptions } from '../../src/client/chorusClient.js';
import { probeAudio, type AudioProbe } from './nodePeer.js';
import { nodeClient, tokenFor, until } from './testNode.js';

/** A joined SDK listener that records every event and decodes whatever it receives. */
export interface TestListener {
  client: ChorusClient;
  probe(): AudioProbe | undefined;
  events: string[];
  counts: number[];
  /** What the SDK measured from join() to its first media packet, once it has. */
  mediaStartedMs(): number | undefined;
  /** Resolves once fresh audio frames with the expected tone arrive (checked after the call). */
  hears(frequency: number, ms?: number): Promise<void>;
  close(): Promise<void>;
}

export async function joinListener(node: Pick<ChorusNode, 'url' | 'tokens'>, roomId: string, options: Partial<ChorusClientOptions> = {}): Promise<TestListener> {
  const client = nodeClient(node, roomId, await tokenFor(node, roomId, 'listener'), options);
  let probe: AudioProbe | undefined;
  const events: string[] = [];
  const counts: number[] = [];
  client.on('track', (track) => {
    probe?.stop();
    probe = probeAudio(track);
    events.push('track');
  });
  client.on('trackended', () => events.push('trackended'));
  let mediaStartedMs: number | undefined;
  client.on('mediastarted', (afterMs) => {
    mediaStartedMs = afterMs;
    events.push('mediastarted');
  });
  client.on('broadcast', (b) => events.push(b.live ? (b.paused ? 'paused' : 'live') : 'waiting'));
  client.on('listeners', (n) => counts.push(n));
  client.on('state', (s) => events.push(`state:${s}`));
  // Errors too (most are retried by the SDK): a failure message then shows what it ran into.
  client.on('error', (e) => events.push(`error:${(e as { code?: string }).code ?? e.message}`));
  await client.join();
  return {
    client,
    probe: () => probe,
    events,
    counts,
    mediaStartedMs: () => mediaStartedMs,
    async hears(frequency, ms = 10_000) {
      const start = probe?.frames ?? 0;
      const startProbe = probe;
      await until(
        () =>
          probe !== undefined &&
          (probe !== startProbe || probe.frames > start + 50) &&
          probe.frames > 50 &&
          probe.rms > 0.05 &&
          Math.abs(probe.frequency - frequency) <= 150,
        ms,
        `listener to hear ${frequency} Hz (rms ${probe?.rms.toFixed(3)}, ~${probe?.frequency} Hz)`,
      );
    },
    async close() {
      probe?.stop();
      await client.close();
    },
  };
}
