/**
 * What a publisher's packets look like where they land: RTP timestamps of the packets a
 * producer on the node receives, from mediasoup's own trace events.
 */
import type { types } from 'mediasoup';
import type { ChorusNode } from '../../src/app.js';
import { until } from './testNode.js';

/** The room's only microphone producer on the node, once it exists. */
export async function microphoneProducer(node: ChorusNode, roomId: string): Promise<types.Producer> {
  let found: types.Producer | undefined;
  await until(
    () => {
      const peers = [...(node.rooms.rooms.get(roomId)?.peers.values() ?? [])];
      found = peers.flatMap((p) => [...p.producers.values()]).find((p) => p.kind === 'audio' && !p.closed);
      return found !== undefined;
    },
    10_000,
    `a microphone producer in ${roomId}`,
  );
  return found!;
}

/**
 * The RTP timestamp steps between consecutive media packets the producer receives, over `count`
 * steps. Padding (no payload: libwebrtc probes the uplink with it at first, on the audio stream
 * when there is no other) is skipped. Opus DTX stretches a step
 * over a silence (to a multiple of the frame).
 */
export async function timestampSteps(producer: types.Producer, count: number, timeoutMs = 10_000): Promise<number[]> {
  const steps: number[] = [];
  let last: number | undefined;
  const onTrace = (trace: types.ProducerTraceEventData): void => {
    const packet = (trace.info as { rtpPacket?: { timestamp: number; payloadSize: bigint | number } } | undefined)?.rtpPacket;
    if (trace.type !== 'rtp' || !packet || Number(packet.payloadSize) === 0) return;
    if (last !== undefined && steps.length < count) steps.push((packet.timestamp - last) >>> 0);
    last = packet.timestamp;
  };
  producer.on('trace', onTrace);
  await producer.enableTraceEvent(['rtp']);
  try {
    await until(() => steps.length >= count, timeoutMs, `${count} media packets from the producer`);
  } finally {
    await producer.enableTraceEvent([]);
    producer.off('trace', onTrace);
  }
  return steps;
}

