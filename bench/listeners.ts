/**
 * One load-generator process of the broadcast benchmark: runs a share of the listeners, started
 * on a shared schedule so arrivals are staggered across all processes. Started by
 * bench/broadcast.ts over IPC; not meant to be run by hand.
 *
 * The listeners are the real SDK on libwebrtc (bench/lib/wrtcListener.ts, `--peer wrtc`) or a
 * minimal signaling client on werift (bench/lib/weriftListener.ts, `--peer werift`); only the
 * chosen stack is loaded.
 */
import type { BenchPeerFactory } from './lib/benchPeer.js';
import type { ChildToParent, ListenerProcConfig, ParentToChild } from './lib/messages.js';

const config = JSON.parse(process.argv[2] ?? '{}') as ListenerProcConfig;
if (!config.url || !Array.isArray(config.indices)) throw new Error('listeners.ts is started by bench/broadcast.ts');

const send = (message: ChildToParent): void => {
  if (process.connected) process.send?.(message);
};
// The parent went away (crash, kill): do not linger as an orphan holding sockets.
process.on('disconnect', () => process.exit(1));

const makeListener: BenchPeerFactory =
  config.peer === 'werift'
    ? await (await import('./lib/weriftListener.js')).weriftListeners(config)
    : (await import('./lib/wrtcListener.js')).wrtcListeners(config);

const listeners = config.indices.map((index) => makeListener(index, config));

let startAt: (value: number) => void = () => undefined;
const started = new Promise<number>((resolve) => (startAt = resolve));

process.on('message', (message: ParentToChild) => {
  void (async () => {
    switch (message.type) {
      case 'start':
        startAt(message.startAt);
        break;
      case 'baseline':
        await Promise.all(listeners.map((l) => l.baseline()));
        send({ type: 'baselined' });
        break;
      case 'finish':
        await Promise.all(listeners.map((l) => l.finish()));
        send({ type: 'report', results: listeners.map((l) => l.result) });
        break;
      case 'close': {
        // Say goodbye to the server, but never hang on it.
        setTimeout(() => process.exit(0), 5000).unref();
        await Promise.all(listeners.map((l) => l.close()));
        process.exit(0);
      }
    }
  })();
});

send({ type: 'ready' });
const t0 = await started;
await Promise.all(
  listeners.map(
    (listener) =>
      new Promise<void>((resolve) => {
        const delay = Math.max(0, t0 + listener.index * config.staggerMs - Date.now());
        setTimeout(() => {
          void listener.start().then((r) => {
            send({ type: 'progress', index: r.index, ok: r.ok, ...(r.joinMs !== undefined ? { joinMs: r.joinMs } : {}), ...(r.error ? { error: r.error } : {}) });
            resolve();
          });
        }, delay);
      }),
  ),
);
send({ type: 'ramped' });
