/**
 * The embedded records database in its own process: the node's event loop does not run its
 * statements, its socket is private, it comes back after it is killed with what was committed,
 * and it stops (closing the database) when its node is gone.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, expect, test } from 'vitest';
import { ensurePgliteDirectory } from '../../src/records/pgliteCreate.js';
import { PgliteServer, SERVER_CHILD_SCRIPT } from '../../src/records/pgliteServer.js';
import { openPglite } from '../../src/records/sql.js';
import { until } from '../support/testNode.js';

let dir: string;

beforeAll(async () => {
  dir = join(mkdtempSync(join(tmpdir(), 'chorus-pglite-server-')), 'pglite');
  await ensurePgliteDirectory(dir);
}, 180_000);

test("a slow statement runs in the database's process: the node's event loop keeps turning", async () => {
  const db = await openPglite(dir);
  try {
    // Ticks of a 10 ms timer while the statement runs, and one after it, so a held loop shows
    // as one long gap between two of them.
    const ticks: number[] = [performance.now()];
    const timer = setInterval(() => ticks.push(performance.now()), 10);
    const started = performance.now();
    await db.query('SELECT pg_sleep(1)');
    const took = performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 30));
    clearInterval(timer);
    const longestGap = Math.max(...ticks.slice(1).map((t, i) => t - ticks[i]!));
    // In the node's own process this gap was the whole second: PGlite ran on its loop.
    expect(took).toBeGreaterThanOrEqual(1000);
    expect(longestGap).toBeLessThan(500);
  } finally {
    await db.close();
  }
});

test('it is vacuumed and analyzed on a timer, as PGlite runs no autovacuum', async () => {
  const db = await openPglite(dir, undefined, 6, { vacuumEveryMs: 300 });
  try {
    await db.exec('DROP TABLE IF EXISTS churned; CREATE TABLE churned (id int PRIMARY KEY, v int)');
    await db.exec('INSERT INTO churned SELECT g, 0 FROM generate_series(1, 2000) g; UPDATE churned SET v = v + 1; UPDATE churned SET v = v + 1');
    // What a vacuum leaves on disk, not the statistics (they are flushed lazily): pages marked
    // all-visible, so an index-only scan reads no row from the table. Until a vacuum runs after
    // the updates, it reads every one.
    const heapFetches = (): Promise<number> =>
      db.transaction(async (tx) => {
        await tx.exec('SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off');
        const plan = (await tx.query<{ 'QUERY PLAN': string }>('EXPLAIN (ANALYZE, COSTS OFF) SELECT count(*) FROM churned WHERE id > 0')).map((r) => r['QUERY PLAN']).join('\n');
        return Number(/Heap Fetches: (\d+)/.exec(plan)?.[1] ?? NaN);
      });
    await until(async () => (await heapFetches()) === 0, 20_000, 'a vacuum after the updates');
    await until(
      async () => (await db.query<{ ok: boolean }>(`SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL AS ok FROM pg_stat_user_tables WHERE relname = 'churned'`))[0]?.ok === true,
      5000,
      'the vacuum and the analyze in the statistics',
    );
  } finally {
    await db.close();
  }
});

test('its socket is in a directory only the node can enter, gone once closed; ps names it', async () => {
  const server = await PgliteServer.start(dir);
  const socketDir = server.socketDir;
  try {
    expect(readFileSync(`/proc/${server.pid}/comm`, 'utf8')).toBe('chorus-records\n');
    expect(statSync(socketDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(socketDir, '.s.PGSQL.5432')).isSocket()).toBe(true);
  } finally {
    await server.close();
  }
  expect(existsSync(socketDir)).toBe(false);
});

test('Ctrl-C at a terminal (SIGINT to the process group) leaves it serving: the node closes it', async () => {
  const db = await openPglite(dir);
  try {
    const pid = db.server!.pid!;
    process.kill(pid, 'SIGINT');
    // Two round trips after the signal: the child has handled it by the time they answer.
    expect(await db.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    expect(await db.query('SELECT 2 AS two')).toEqual([{ two: 2 }]);
    expect(db.server).toMatchObject({ pid, restarts: 0 });
  } finally {
    await db.close();
  }
});

test('killed, it is started again by itself, with what was committed before', async () => {
  const db = await openPglite(dir);
  try {
    await db.exec('DROP TABLE IF EXISTS kept; CREATE TABLE kept (v int)');
    await db.transaction(async (tx) => {
      await tx.query('INSERT INTO kept VALUES ($1), ($2)', [1, 2]);
    });
    const pid = db.server!.pid!;
    process.kill(pid, 'SIGKILL');
    // Statements meanwhile fail (the records writer spills them); none hangs.
    await until(async () => (await db.query('SELECT 1').then(() => false, () => true)) || db.server!.restarts > 0, 10_000, 'a statement to fail while the process is gone');
    await until(() => db.server!.restarts === 1 && db.server!.pid !== undefined, 30_000, 'the process to be started again');
    expect(db.server!.pid).not.toBe(pid);
    await until(async () => db.query('SELECT 1').then(() => true, () => false), 10_000, 'the pool to reconnect');
    expect(await db.query<{ v: number }>('SELECT v FROM kept ORDER BY v')).toEqual([{ v: 1 }, { v: 2 }]);
  } finally {
    await db.close();
  }
});

test('a directory it cannot open fails the start with the reason, and leaves no socket behind', async () => {
  const sockets = (): string[] => readdirSync(tmpdir()).filter((n) => n.startsWith('chorus-records-socket-'));
  const before = new Set(sockets());
  // /proc refuses new entries, even to root: PGlite cannot make its files there.
  await expect(PgliteServer.start(join('/proc', `chorus-pglite-${process.pid}`, 'pglite'))).rejects.toThrow(/the records database process exited \(code 1\) before it served: \S/);
  const after = sockets().filter((n) => !before.has(n));
  expect(after).toEqual([]);
});

test('it closes the database and exits once the node that started it is gone (its stdin ends)', async () => {
  const require = createRequire(import.meta.url);
  const socketDir = mkdtempSync(join(tmpdir(), 'chorus-pglite-server-sock-'));
  const child = spawn(
    process.execPath,
    ['-e', SERVER_CHILD_SCRIPT, require.resolve('@electric-sql/pglite'), require.resolve('@electric-sql/pglite-socket'), dir, join(socketDir, '.s.PGSQL.5432')],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  child.stdout.setEncoding('utf8');
  const [first] = (await once(child.stdout, 'data')) as [string];
  expect(first).toContain('ready');
  // What a dead node's end of the pipe does: it closes.
  child.stdin.end();
  const [code] = (await once(child, 'exit')) as [number | null];
  expect(code).toBe(0);
  // A killed node cannot remove the socket's directory: the child does.
  expect(existsSync(socketDir)).toBe(false);
  // An orderly exit left the directory whole: it opens again and answers.
  const db = await openPglite(dir);
  try {
    expect(await db.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  } finally {
    await db.close();
  }
});
