/**
 * HeartbeatGrid against connections that are not what it expects: it relies on engine.io's own
 * members, so a connection without them (another engine.io version) must stay on engine.io's
 * timer, untouched, with one warning for the node and not one per client.
 */
import { EventEmitter } from 'node:events';
import pino from 'pino';
import { expect, test } from 'vitest';
import { HeartbeatGrid } from '../../src/signaling/heartbeatGrid.js';
import { until } from '../support/testNode.js';

test('a connection without the members it needs is left on its own timer, and the node is told once', () => {
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
  const engine = new EventEmitter();
  const grid = new HeartbeatGrid(engine, 15_000, 1000, log);
  const timer = setTimeout(() => undefined, 60_000);
  try {
    // engine.io 6 minus the method that sends the ping.
    const stranger = { resetPingTimeout: () => undefined, once: () => undefined, pingIntervalTimer: timer, hasRefreshedPingTimeout: false, readyState: 'open' };
    engine.emit('connection', stranger);
    engine.emit('connection', { ...stranger });
    expect(stranger.pingIntervalTimer).toBe(timer);
    expect(grid.waiting).toBe(0);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('per-connection timers');
  } finally {
    clearTimeout(timer);
    grid.close();
  }
});

test('a connection it takes over waits at the first step one interval on, is pinged there, re-filed by its answer, and forgotten when it closes', async () => {
  const engine = new EventEmitter();
  const grid = new HeartbeatGrid(engine, 300, 100, pino({ level: 'silent' }));
  const own = setTimeout(() => undefined, 60_000);
  const conn = Object.assign(new EventEmitter(), {
    pings: [] as number[],
    timeouts: 0,
    hasRefreshedPingTimeout: true,
    readyState: 'open',
    pingIntervalTimer: own as unknown,
    sendPacket(type: string) {
      if (type === 'ping') this.pings.push(performance.now());
    },
    resetPingTimeout() {
      this.timeouts++;
    },
  });
  try {
    const opened = performance.now();
    engine.emit('connection', conn);
    // engine.io's timer is replaced by the grid's handle.
    expect(conn.pingIntervalTimer).not.toBe(own);
    expect(grid.waiting).toBe(1);
    await until(() => conn.pings.length > 0, 5000, 'the ping');
    // Not before the interval, and (one at a time here) only one.
    expect(conn.pings[0]! - opened).toBeGreaterThanOrEqual(299);
    expect(conn.timeouts).toBe(1);
    expect(conn.hasRefreshedPingTimeout).toBe(false);
    // Waiting for the answer, it is on no step; the answer (engine.io's refresh) files it again.
    expect(grid.waiting).toBe(0);
    (conn.pingIntervalTimer as { refresh(): void }).refresh();
    expect(grid.waiting).toBe(1);
    conn.emit('close');
    expect(grid.waiting).toBe(0);
    expect(grid.pingsSent).toBe(1);
  } finally {
    clearTimeout(own);
    grid.close();
  }
});
