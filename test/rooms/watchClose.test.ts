/**
 * A watch node that closes while its sweep waits on the store: the sweep resumes to find the
 * node's members cleared by the close. Its hosts are not gone (the node is), so it must leave
 * hosting alone for the nodes that stay to hand over, and close() resolves only once it is done.
 */
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { AuditLog, type AuditEvent } from '../../src/observability/audit.js';
import { parseWatchState } from '../../src/watch/stored.js';
import { WatchService } from '../../src/watch/watchService.js';
import { grantFor, startHarness, type Harness } from '../support/roomHarness.js';

const silent = pino({ level: 'silent' });
let harness: Harness;

beforeAll(async () => {
  harness = await startHarness();
});

afterAll(async () => {
  await harness?.close();
});

test('a sweep under way when the node closes hands no hosting away, and close() waits for it', async () => {
  const { room, channel, store } = await harness.room('watch');
  const audit = new AuditLog(silent);
  const audits: AuditEvent[] = [];
  audit.on('event', (event) => audits.push(event));
  const watch = new WatchService({
    store,
    channel,
    audit,
    log: silent,
    nodeId: 'n1',
    // A sweep every 50 ms.
    settings: { driftThresholdMs: 500, reportIntervalMs: 100, archiveAfterMs: 60_000, stateTtlSeconds: 60 },
  });
  const host = await room.join(grantFor(room, 'host'), randomUUID());
  expect((await watch.joined(room, host))?.state.host?.peerId).toBe(host.id);
  const key = `watch:${room.id}`;
  const before = await store.getValue(key);

  // The next sweep's read of the room's state is held until the node has begun closing.
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const read = store.getValue.bind(store);
  let sweepRead = false;
  const reached = new Promise<void>((resolve) => {
    store.getValue = async (k: string) => {
      if (k === key) {
        resolve();
        await held;
        const value = await read(k);
        sweepRead = true;
        return value;
      }
      return read(k);
    };
  });
  await reached;
  const closing = watch.close();
  release();
  await closing;
  expect(sweepRead).toBe(true);

  store.getValue = read;
  const after = await store.getValue(key);
  expect(after).toBe(before);
  expect(parseWatchState(after!)?.host?.peerId).toBe(host.id);
  expect(audits.filter((e) => e.type === 'watch.host')).toEqual([]);
  expect(channel.to('room', 'watch:state')).toHaveLength(1); // the room's creation only
});
