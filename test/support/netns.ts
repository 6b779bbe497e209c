/**
 * A network namespace for one client, joined to this machine by a veth pair, so a test can give
 * that client alone a constrained link (`tc` on the host end shapes what reaches it). Needs root
 * (CAP_NET_ADMIN) and iproute2 (nftables for `loss`); a test that cannot make one fails saying so.
 *
 *   host: <hostIp>/30 on vh<id>  <—veth—>  namespace chorus<id>: <nsIp>/30 on vn<id>
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Netns {
  name: string;
  /** This machine's end: the address the client in the namespace reaches the node at. */
  hostIp: string;
  nsIp: string;
  /** Shapes what this machine sends into the namespace (the client's downlink); undefined lifts it. */
  limit(kbitPerSecond: number | undefined): Promise<void>;
  /**
   * Drops that share (percent) of the UDP datagrams arriving in the namespace, each at random
   * (the client's media downlink; its signaling over TCP is untouched); undefined lifts it. This
   * kernel has no netem, so loss comes from nftables' random number generator.
   */
  loss(percent: number | undefined): Promise<void>;
  /** Runs a command inside the namespace. */
  spawn(command: string, args: string[]): ChildProcess;
  close(): Promise<void>;
}

async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

export async function createNetns(): Promise<Netns> {
  const id = randomBytes(3).toString('hex');
  const name = `chorus${id}`;
  const [hostDev, nsDev] = [`vh${id}`, `vn${id}`];
  // A /30 in 10.200-249.x.0 picked at random: two namespaces of concurrent tests rarely meet.
  const [a, b] = [200 + (randomBytes(1)[0]! % 50), randomBytes(1)[0]! % 64];
  const hostIp = `10.${a}.${b * 4}.1`;
  const nsIp = `10.${a}.${b * 4}.2`;
  try {
    await ip('netns', 'add', name);
  } catch (error) {
    throw new Error(`cannot create a network namespace (root and iproute2 are needed): ${String(error)}`);
  }
  try {
    await ip('link', 'add', hostDev, 'type', 'veth', 'peer', 'name', nsDev);
    await ip('link', 'set', nsDev, 'netns', name);
    await ip('addr', 'add', `${hostIp}/30`, 'dev', hostDev);
    await ip('link', 'set', hostDev, 'up');
    await ip('netns', 'exec', name, 'ip', 'addr', 'add', `${nsIp}/30`, 'dev', nsDev);
    await ip('netns', 'exec', name, 'ip', 'link', 'set', nsDev, 'up');
    await ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  } catch (error) {
    await ip('netns', 'del', name).catch(() => undefined);
    await ip('link', 'del', hostDev).catch(() => undefined);
    throw error;
  }
  return {
    name,
    hostIp,
    nsIp,
    async limit(kbit) {
      if (kbit === undefined) {
        await run('tc', ['qdisc', 'del', 'dev', hostDev, 'root']).catch(() => undefined);
        return;
      }
      // A token bucket: the rate, a burst of a few packets, and a queue of at most 200 ms
      // (beyond it packets drop, as on a congested mobile link).
      await run('tc', ['qdisc', 'replace', 'dev', hostDev, 'root', 'tbf', 'rate', `${kbit}kbit`, 'burst', '8kb', 'latency', '200ms']);
    },
    async loss(percent) {
      // Replaced whole in one transaction: an empty table is added first so the delete never fails.
      const perMille = percent === undefined ? 0 : Math.round(percent * 10);
      if (!(perMille >= 0 && perMille <= 1000)) throw new Error(`loss must be 0..100 percent, not ${percent}`);
      const rule = perMille > 0 ? `udp dport 1-65535 numgen random mod 1000 < ${perMille} drop;` : '';
      const script = `add table inet chorus_loss\ndelete table inet chorus_loss\ntable inet chorus_loss { chain downlink { type filter hook input priority 0; ${rule} }; }\n`;
      await new Promise<void>((resolve, reject) => {
        const child = execFile('ip', ['netns', 'exec', name, 'nft', '-f', '-'], (error) => (error ? reject(new Error(`nft (nftables is needed for loss): ${error.message}`)) : resolve()));
        child.stdin?.end(script);
      });
    },
    spawn(command, args) {
      return spawn('ip', ['netns', 'exec', name, command, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    },
    async close() {
      await ip('netns', 'del', name).catch(() => undefined);
      await ip('link', 'del', hostDev).catch(() => undefined);
    },
  };
}
