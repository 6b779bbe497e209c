/**
 * RTC_MIN_BITRATE: every transport a room makes carries the floor under its bandwidth estimate
 * (mediasoup reports it in the transport's stats); without it, none is set.
 */
import pino from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { RoomMedia, type TransportSettings } from '../../src/media/roomMedia.js';
import { WorkerPool } from '../../src/media/workerPool.js';

const silent = pino({ level: 'silent' });
const base: TransportSettings = { listenIp: '127.0.0.1', announcedAddress: undefined, minPort: 41_000, maxPort: 41_999, enableUdp: true, enableTcp: false, initialAvailableOutgoingBitrate: 600_000 };
let pool: WorkerPool;

beforeAll(async () => {
  pool = await WorkerPool.start({ size: 1, logLevel: 'warn', rtcMinPort: 41_000, rtcMaxPort: 41_999 }, silent);
});

afterAll(() => pool?.close());

test('a floor set for the node is on every transport, sending and receiving; unset, there is none', async () => {
  const floored = await RoomMedia.create('floored', pool, { ...base, minOutgoingBitrate: 1_500_000 }, 500, silent);
  const plain = await RoomMedia.create('plain', pool, base, 500, silent);
  try {
    for (const direction of ['send', 'recv'] as const) {
      const transport = await floored.createTransport(direction, false);
      expect((await transport.getStats())[0]?.minOutgoingBitrate).toBe(1_500_000);
      const other = await plain.createTransport(direction, false);
      expect((await other.getStats())[0]?.minOutgoingBitrate ?? 0).toBe(0);
    }
  } finally {
    floored.close();
    plain.close();
  }
});
