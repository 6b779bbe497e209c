/**
 * One ffmpeg child process fed RTP on loopback (the HLS fallback's runs, class recordings): how it
 * ended, its last stderr lines for the log, and stopping it the way that lets it finish its files
 * (SIGINT: it closes the open segment and ends the playlist), killed if it does not in time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { Logger } from '../observability/logger.js';

export interface FfmpegExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One RTP port for ffmpeg and the RTCP port it will use beside it. */
export interface RtpPorts {
  rtp: number;
  rtcp: number;
}

/**
 * util-linux's setpriv, where there is one: ffmpeg is started through it with a parent-death
 * signal, so a node that dies without stopping its children (SIGKILL, the OOM killer) takes its
 * ffmpeg runs with it instead of leaving them holding ports and CPU. setpriv execs ffmpeg: the pid,
 * signals and exit status are ffmpeg's own.
 */
const SETPRIV = process.platform === 'linux' ? ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => existsSync(path)) : undefined;
/** setpriv's exit status when it could not exec the program (util-linux's EX_EXEC_ENOENT / EX_EXEC_FAILED). */
const EXEC_FAILED = new Set([126, 127]);

/** Attempts at finding a free port whose neighbour is free too, per pair. */
const PAIR_ATTEMPTS = 50;

async function bound(port: number): Promise<Socket | undefined> {
  const socket = createSocket('udp4');
  const ok = await new Promise<boolean>((resolve) => {
    socket.once('error', () => resolve(false));
    socket.bind(port, '127.0.0.1', () => resolve(true));
  });
  if (ok) return socket;
  socket.close();
  return undefined;
}

/** Where ffmpeg's ports are looked for: above the well-known and registered-but-common ports. */
const PAIR_RANGE_LOW = 10_000;

/**
 * The ports to pick ffmpeg's pairs from, below the kernel's ephemeral range (where it picks a port
 * for every `bind(0)` and outgoing socket on the machine): between the moment a pair is found free
 * and the moment ffmpeg binds it (a process start, ~0.1 s), any socket anywhere could be given a
 * port from that range, and ffmpeg then exits with `bind failed: Address already in use` (seen
 * once in a full test run). Below it, only a program naming that port can take it. Undefined where
 * the range cannot be read or leaves no room: then the kernel picks, as before.
 */
function pairRange(): { low: number; high: number } | undefined {
  try {
    const [ephemeralLow] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (!ephemeralLow || ephemeralLow - PAIR_RANGE_LOW < 1000) return undefined;
    return { low: PAIR_RANGE_LOW, high: ephemeralLow - 1 };
  } catch {
    return undefined;
  }
}

/** A candidate RTP port: even (RTP's convention, RTCP on the odd one above), in `range`, else the kernel's. */
async function candidate(range: { low: number; high: number } | undefined): Promise<Socket | undefined> {
  if (!range) return bound(0);
  const evens = Math.floor((range.high - 1 - range.low) / 2);
  return bound(range.low + 2 * randomInt(evens));
}

/**
 * `n` pairs of UDP ports free on loopback right now, each an RTP port and the next one up, bound
 * together and then released for ffmpeg. ffmpeg's SDP input ignores `a=rtcp` and always takes
 * RTCP on the RTP port + 1, binding it without asking: a neighbour nobody checked can be taken,
 * and ffmpeg then exits before receiving anything.
 */
export async function freeRtpPorts(n: number): Promise<RtpPorts[]> {
  const held: Socket[] = [];
  const pairs: RtpPorts[] = [];
  const range = pairRange();
  try {
    for (let attempt = 0; pairs.length < n; attempt++) {
      if (attempt >= n * PAIR_ATTEMPTS) throw new Error(`no ${n} free UDP port pairs on loopback after ${attempt} attempts`);
      const rtp = await candidate(range);
      if (!rtp) continue;
      const port = rtp.address().port;
      const rtcp = port < 65535 ? await bound(port + 1) : undefined;
      if (!rtcp) {
        rtp.close();
        continue;
      }
      held.push(rtp, rtcp);
      pairs.push({ rtp: port, rtcp: port + 1 });
    }
    return pairs;
  } finally {
    for (const socket of held) socket.close();
  }
}

export class FfmpegProcess {
  #exit: FfmpegExit | undefined;
  readonly #exited: Promise<void>;
  readonly #stderr: string[] = [];
  readonly #child: ChildProcess;

  /** Starts `ffmpeg args` in `cwd` (where it reads and writes); `log` gets its stderr at debug. */
  constructor(ffmpeg: string, args: string[], cwd: string, log: Logger) {
    const child = SETPRIV
      ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', ffmpeg, ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(ffmpeg, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    this.#exited = new Promise((resolve) => {
      // 'close', not 'exit': stderr is read to its end by then (what setpriv said, ffmpeg's last words).
      child.once('close', (code, signal) => {
        if (this.#exit) return;
        // A missing ffmpeg is setpriv's exit status, not a spawn error: logged the same way.
        if (SETPRIV && code !== null && EXEC_FAILED.has(code) && this.#stderr.some((line) => line.startsWith('setpriv:'))) {
          log.error({ ffmpeg, setpriv: this.#stderr.at(-1) }, 'ffmpeg could not be started');
        }
        this.#exit = { code, signal };
        resolve();
      });
      child.once('error', (error) => {
        log.error({ err: error, ffmpeg }, 'ffmpeg could not be started');
        this.#exit ??= { code: -1, signal: null };
        resolve();
      });
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) {
        if (!line.trim()) continue;
        this.#stderr.push(line.trim());
        if (this.#stderr.length > 20) this.#stderr.shift();
        log.debug({ ffmpeg: line.trim() }, 'ffmpeg');
      }
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Resolves when ffmpeg has ended, however. */
  get exited(): Promise<void> {
    return this.#exited;
  }

  /** How ffmpeg ended, once it has. */
  get exit(): FfmpegExit | undefined {
    return this.#exit;
  }

  /** ffmpeg's last stderr lines, for the log when a run fails. */
  get stderrTail(): string[] {
    return [...this.#stderr];
  }

  /** Asks ffmpeg to finish (SIGINT); kills it if it has not within `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    if (this.#exit) return;
    this.#child.kill('SIGINT');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }

  async kill(): Promise<void> {
    if (this.#exit) return;
    this.#child.kill('SIGKILL');
    await this.#exited;
  }
}
