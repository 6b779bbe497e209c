/**
 * What SRTP costs per packet with each libsrtp the worker can link: Debian's libsrtp2 (NSS
 * crypto) and the OpenSSL build scripts/mediasoup/static-libs.sh makes for the worker.
 * Compiles bench/srtp/protect.c against each, runs them in turn (--rounds times), and reports the
 * median microseconds to protect one 100-byte RTP packet.
 *
 *   npm run bench:srtp -- [--packets N] [--rounds R] [--out DIR]
 *
 * Needs gcc, pkg-config and libsrtp2-dev (the worker's build installs them) and the OpenSSL build
 * (scripts/mediasoup/static-libs.sh, run by scripts/setup-worker.sh). Prints one JSON line; appends it to <out>/srtp.jsonl and
 * rewrites <out>/srtp.html.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { cpus, homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gitCommit } from './lib/gitCommit.js';
import { lineChart } from './lib/report.js';
import { recordRun } from './lib/runLog.js';

const { values: args } = parseArgs({
  options: {
    packets: { type: 'string', default: '200000' },
    rounds: { type: 'string', default: '5' },
    out: { type: 'string', default: 'bench/results' },
  },
  strict: true,
});
const packets = Number(args.packets);
const rounds = Number(args.rounds);
if (!Number.isInteger(packets) || packets < 1 || !Number.isInteger(rounds) || rounds < 1 || rounds > 100) {
  process.stderr.write('usage: npm run bench:srtp -- [--packets N >= 1] [--rounds 1..100] [--out DIR]\n');
  process.exit(2);
}

const cacheRoot = process.env['CHORUS_CACHE_DIR'] ?? join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'chorus');
const prefix = join(cacheRoot, 'static-libs', 'libsrtp');
const pcDir = (dir: string): string | undefined => {
  if (!existsSync(dir)) return undefined;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.name === 'libsrtp2.pc') return entry.parentPath;
  }
  return undefined;
};
const opensslPc = pcDir(prefix);
if (!opensslPc) {
  process.stderr.write(`no OpenSSL libsrtp under ${prefix}: run scripts/setup-worker.sh first\n`);
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'chorus-srtp-'));
const source = new URL('./srtp/protect.c', import.meta.url).pathname;
const build = (name: string, pkgConfigPath: string | undefined, flags: string[]): string => {
  const env = { ...process.env, ...(pkgConfigPath ? { PKG_CONFIG_PATH: pkgConfigPath } : {}) };
  const pc = execFileSync('pkg-config', ['--cflags', '--libs', ...flags, 'libsrtp2'], { env, encoding: 'utf8' }).trim().split(/\s+/);
  const binary = join(work, name);
  execFileSync('gcc', ['-O2', source, '-o', binary, ...pc], { env });
  return binary;
};
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

interface SrtpRun {
  packets: number;
  rounds: number;
  nssUsPerPacket: number;
  opensslUsPerPacket: number;
  ratio: number;
  machine: { cpus: number; model: string };
  commit: string | undefined;
  command: string;
  ts: string;
}

try {
  // Debian's: pkg-config's default path; ours: static, so OpenSSL comes along.
  const nss = build('nss', undefined, []);
  const openssl = build('openssl', opensslPc, ['--static']);
  const times = { nss: [] as number[], openssl: [] as number[] };
  // Interleaved, so a busy moment on the machine falls on both.
  for (let round = 0; round < rounds; round++) {
    times.nss.push(Number(execFileSync(nss, [String(packets)], { encoding: 'utf8' })));
    times.openssl.push(Number(execFileSync(openssl, [String(packets)], { encoding: 'utf8' })));
  }
  const run: SrtpRun = {
    packets,
    rounds,
    nssUsPerPacket: median(times.nss),
    opensslUsPerPacket: median(times.openssl),
    ratio: Math.round((median(times.nss) / median(times.openssl)) * 100) / 100,
    machine: { cpus: cpus().length, model: cpus()[0]?.model.replace(/\s+\d+-Core Processor$/, '') ?? 'unknown' },
    commit: gitCommit(),
    command: `npm run bench:srtp -- --packets ${packets} --rounds ${rounds}`,
    ts: new Date().toISOString(),
  };
  const render = (runs: SrtpRun[]): string => `<!doctype html><meta charset="utf-8"><title>SRTP protect cost</title><body>
${lineChart({ title: 'Microseconds to protect one 100-byte RTP packet', xLabel: 'run', yLabel: 'µs / packet', series: [{ name: "Debian's libsrtp2 (NSS)", points: runs.map((r, i) => [i + 1, r.nssUsPerPacket]) }, { name: 'libsrtp 2.5.0 on OpenSSL', points: runs.map((r, i) => [i + 1, r.opensslUsPerPacket]) }] })}
</body>`;
  const written = recordRun(args.out, 'srtp', run, render);
  process.stdout.write(`${JSON.stringify(run)}\n`);
  process.stderr.write(`[bench:srtp] wrote ${written.jsonl} and ${written.html} (${written.runs} run(s))\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
