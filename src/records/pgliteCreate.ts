/**
 * Creates a PGlite data directory in a child process, so the node never holds what creating one
 * costs. PGlite creates a database by running initdb in WebAssembly inside a second, temporary
 * PGlite: in the opening process that is about 450 MB of WebAssembly memory, released only at
 * some later full garbage collection (measured: RSS 720–815 MB once a fresh directory was open,
 * against 150–190 MB for a directory that already existed). A child gives all of it back when it
 * exits, at the price of about a second more on the first start.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, renameSync, rmSync, rmdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** A generous bound: initdb takes 4–5 s on an idle 2-core machine, many times that under load. */
const CREATE_TIMEOUT_MS = 180_000;

// CommonJS, as `node -e` runs it; PGlite's CommonJS entry is passed in, resolved from here.
// Its stdin is a pipe the node never writes to: it ends when the node dies, and then so does the
// child, rather than go on writing where the node's next start will be creating.
export const CREATE_CHILD_SCRIPT = `
const [entry, dir] = process.argv.slice(1);
process.stdin.on('end', () => process.exit(1)).resume();
(async () => {
  const { PGlite } = require(entry);
  const db = new PGlite(dir);
  await db.waitReady;
  await db.close();
  process.exit(0);
})().catch((error) => {
  process.stderr.write(String(error && error.stack || error));
  process.exit(1);
});
`;

/** True when `dir` holds a PostgreSQL data directory. */
function isPgliteDirectory(dir: string): boolean {
  return existsSync(join(dir, 'PG_VERSION'));
}

/**
 * Makes `dir` a new database unless it is one already (then true). It is created beside `dir` and renamed
 * into place, so a start stopped half-way leaves no half-made database; the caller holds the
 * directory's lock, so a leftover from such a start is nobody else's.
 */
export async function ensurePgliteDirectory(dir: string): Promise<boolean> {
  if (isPgliteDirectory(dir)) return false;
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new Error(`${dir} is not empty and holds no database (no PG_VERSION): move its files away, or point CHORUS_DATA_DIR elsewhere`);
  }
  const building = `${dir}.creating`;
  rmSync(building, { recursive: true, force: true });
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  try {
    await promisify(execFile)(process.execPath, ['-e', CREATE_CHILD_SCRIPT, entry, building], { timeout: CREATE_TIMEOUT_MS, maxBuffer: 16 << 20 });
  } catch (error) {
    rmSync(building, { recursive: true, force: true });
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`creating the records database in ${dir} failed: ${stderr || (error as Error).message}`);
  }
  if (existsSync(dir)) rmdirSync(dir);
  renameSync(building, dir);
  return true;
}
