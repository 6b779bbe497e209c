/**
 * Waiting for a producer's RTP after its sender was quiet. A keyframe request (PLI) that reaches
 * a sender whose track is detached (a direct call's SFU uplink sends nothing) is lost, and
 * mediasoup holds every later request for that stream behind it for a second before asking
 * again: each new subscriber would see nothing for that second. So a video consumer of such a
 * producer resumes (and asks for its keyframe) only once the sender's RTP is back.
 */
import type { types } from 'mediasoup';

/** Resolves at the producer's first RTP packet from now, its close, or after `ms`. */
export function firstRtp(producer: types.Producer, ms: number): Promise<void> {
  if (producer.closed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      producer.off('trace', onTrace);
      producer.observer.off('close', done);
      if (!producer.closed) void producer.enableTraceEvent([]).catch(() => undefined);
      resolve();
    };
    const onTrace = (trace: types.ProducerTraceEventData): void => {
      if (trace.type === 'rtp') done();
    };
    const timer = setTimeout(done, ms);
    producer.on('trace', onTrace);
    producer.observer.on('close', done);
    // Per-packet traces, for as long as it takes the first one to come.
    producer.enableTraceEvent(['rtp']).catch(done);
  });
}
