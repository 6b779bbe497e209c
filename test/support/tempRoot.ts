/**
 * Vitest's global setup: one temporary directory for the whole run. Every test makes its own
 * under it (`os.tmpdir()` reads TMPDIR, and the test processes, the nodes they start, ffmpeg and
 * Chromium inherit it), and the run removes it at the end. Before, each run left about ninety
 * directories in /tmp, nine of them 39 MB records databases.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'chorus-test-'));
  // Traversable by the other users tests run servers as (PostgreSQL refuses to run as root), as
  // /tmp is; each test's own directory inside keeps its own mode.
  chmodSync(root, 0o711);
  process.env['TMPDIR'] = root;
  return () => rmSync(root, { recursive: true, force: true });
}
