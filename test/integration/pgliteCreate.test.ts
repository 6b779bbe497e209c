/**
 * The embedded records database on a directory that is not one yet: created in a child
 * process (the node keeps none of initdb's memory), renamed into place whole, and refused with
 * a clear error where the directory holds something else.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { CREATE_CHILD_SCRIPT, ensurePgliteDirectory } from '../../src/records/pgliteCreate.js';
import { openPglite } from '../../src/records/sql.js';

test('a fresh directory is created outside the node, holds its rows, and costs the node little memory', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'chorus-pglite-create-'));
  const dir = join(parent, 'pglite');
  const externalBefore = process.memoryUsage().external;
  const db = await openPglite(dir);
  // Created in the node's own process, a fresh PGlite held 600–700 MB of WebAssembly memory
  // here at this point (two databases' and initdb's); an existing one holds about 150 MB.
  const grew = process.memoryUsage().external - externalBefore;
  try {
    expect(grew).toBeLessThan(350e6);
    expect(existsSync(join(dir, 'PG_VERSION'))).toBe(true);
    expect(readdirSync(parent).sort()).toEqual(['pglite', 'pglite.lock']);
    expect(await db.query(`SELECT current_setting('shared_buffers') AS sb`)).toEqual([{ sb: '32MB' }]);
    await db.exec('CREATE TABLE kept (v text); INSERT INTO kept VALUES (\'here\')');
  } finally {
    await db.close();
  }
  const again = await openPglite(dir);
  try {
    expect(await again.query('SELECT v FROM kept')).toEqual([{ v: 'here' }]);
  } finally {
    await again.close();
  }
});

test('what a start stopped half-way through creating left behind is cleared', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'chorus-pglite-create-'));
  const dir = join(parent, 'pglite');
  mkdirSync(`${dir}.creating`);
  writeFileSync(join(`${dir}.creating`, 'PG_VERSION'), '17\n');
  mkdirSync(dir);
  await ensurePgliteDirectory(dir);
  expect(existsSync(`${dir}.creating`)).toBe(false);
  const db = await openPglite(dir);
  try {
    expect(await db.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
  } finally {
    await db.close();
  }
});

test('a directory holding other files is refused and left as it was', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'chorus-pglite-create-'));
  const dir = join(parent, 'pglite');
  mkdirSync(dir);
  writeFileSync(join(dir, 'notes.txt'), 'mine');
  await expect(openPglite(dir)).rejects.toThrow(/is not empty and holds no database/);
  expect(readdirSync(dir)).toEqual(['notes.txt']);
  // The lock was given back: once the files are moved away, the directory opens.
  renameSync(join(dir, 'notes.txt'), join(parent, 'notes.txt'));
  const db = await openPglite(dir);
  await db.close();
});

test('a directory that cannot be created is a clear error, and nothing is left half-made', async () => {
  // /proc refuses new entries, even to root: the child's initdb fails there.
  const dir = join('/proc', `chorus-pglite-${process.pid}`, 'pglite');
  await expect(ensurePgliteDirectory(dir)).rejects.toThrow(/creating the records database in \/proc\/.* failed: /);
  expect(existsSync(`${dir}.creating`)).toBe(false);
  expect(existsSync(dir)).toBe(false);
});

test('the creating child stops, creating nothing, once the node that started it is gone (its stdin ends)', async () => {
  const building = join(mkdtempSync(join(tmpdir(), 'chorus-pglite-create-')), 'pglite.creating');
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const child = spawn(process.execPath, ['-e', CREATE_CHILD_SCRIPT, entry, building], { stdio: ['pipe', 'ignore', 'ignore'] });
  // What a dead node's end of the pipe does: it closes.
  child.stdin.end();
  const [code] = (await once(child, 'exit')) as [number | null];
  expect(code).toBe(1);
  expect(existsSync(join(building, 'PG_VERSION'))).toBe(false);
});
