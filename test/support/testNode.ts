import { startNode, type ChorusNode } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import type { Logger } from '../../src/observability/logger.js';
import { ChorusClient, type ChorusClientOptions } from '../../src/client/chorusClient.js';
import type { Role } from '../../src/protocol/messages.js';
import { toneTrack, webrtcHandlerFactory, type ToneSource } from './nodePeer.js';

/** A real node on loopback with an ephemeral HTTP port and its own RTC port range. */
export async function startTestNode(env: Record<string, string> = {}, log?: Logger): Promise<ChorusNode> {
  const config = loadConfig({
    CHORUS_HOST: '127.0.0.1',
    CHORUS_PORT: '0',
    LOG_LEVEL: process.env['TEST_LOG_LEVEL'] ?? 'silent',
    MEDIASOUP_WORKERS: '2',
    RTC_LISTEN_IP: '127.0.0.1',
    RTC_ANNOUNCED_ADDRESS: '127.0.0.1',
    RTC_MIN_PORT: '20000',
    RTC_MAX_PORT: '29999',
    CHORUS_COUNT_INTERVAL_MS: '200',
    CHORUS_WEB_DIR: '/nonexistent',
    CHORUS_API_KEYS: `test:${'t'.repeat(40)}`,
    CHORUS_DEMO: 'true',
    // PGlite costs seconds and hundreds of MB per node: only the records tests turn it on.
    CHORUS_RECORDS: 'false',
    ...env,
  });
  return log ? startNode(config, log) : startNode(config);
}

/**
 * Several nodes of one cluster (pass REDIS_URL in `env`), named `ids`, each with its own slice of
 * the 20000-29999 RTC port range so their media never collides.
 */
export async function startTestNodes(ids: string[], env: Record<string, string>): Promise<ChorusNode[]> {
  const span = Math.floor(10_000 / ids.length);
  const nodes: ChorusNode[] = [];
  for (const [i, id] of ids.entries()) {
    nodes.push(await startTestNode({ ...env, CHORUS_NODE_ID: id, RTC_MIN_PORT: String(20_000 + i * span), RTC_MAX_PORT: String(20_000 + (i + 1) * span - 1) }));
  }
  return nodes;
}

export async function tokenFor(node: Pick<ChorusNode, 'tokens'>, room: string, role: Role, identity = `${role}-${Math.random().toString(36).slice(2, 8)}`): Promise<string> {
  return node.tokens.mint({ room, identity, role });
}

/** An SDK client backed by Node WebRTC, not yet joined. */
export function nodeClient(node: Pick<ChorusNode, 'url'>, roomId: string, token: string, extra: Partial<ChorusClientOptions> = {}): ChorusClient {
  return new ChorusClient({
    url: node.url,
    roomId,
    token,
    handlerFactory: webrtcHandlerFactory(),
    socket: { transports: ['websocket'] },
    retry: { initialMs: 100, maxMs: 1000 },
    ...extra,
  });
}

/** Resolves when `predicate` holds, checked on every event loop turn; rejects after `ms`. */
export async function until(predicate: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface ToneBroadcaster {
  client: ChorusClient;
  tone: ToneSource;
  /** Closes the client and stops the tone. */
  stop(): Promise<void>;
}

/** A broadcaster (the real SDK) joined to `room` on `node` and publishing a `frequency` Hz tone. */
export async function toneBroadcaster(node: Pick<ChorusNode, 'url' | 'tokens'>, room: string, frequency: number, identity = 'speaker'): Promise<ToneBroadcaster> {
  const tone = toneTrack(frequency);
  const client = nodeClient(node, room, await tokenFor(node, room, 'broadcaster', identity));
  const stop = async (): Promise<void> => {
    await client.close();
    tone.stop();
  };
  try {
    await client.join();
    await client.publish(tone.track);
  } catch (error) {
    await stop();
    throw error;
  }
  return { client, tone, stop };
}
