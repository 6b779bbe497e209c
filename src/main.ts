/** `npm start`: one Chorus node on its configuration, stopped cleanly by SIGINT/SIGTERM. */
import { StartError, startNode, startupNotices } from './app.js';
import { ConfigError, loadConfig } from './config/config.js';
import { createLogger } from './observability/logger.js';

let config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
const log = createLogger(config.logLevel, config.nodeId);
let node;
try {
  node = await startNode(config, log);
} catch (error) {
  // A cause the operator fixes (a port in use) is one line naming what to change, not a stack.
  if (error instanceof StartError) {
    process.stderr.write(`chorus: ${error.message}\n`);
    process.exit(1);
  }
  throw error;
}
for (const notice of startupNotices(config)) log[notice.level](notice.fields, notice.msg);
log.info(`open ${node.url}/ here${node.publicUrl !== node.url ? `, or ${node.publicUrl}/ from a phone on this network` : ''}`);

// A bug that escapes a handler must not take every room on this node down with it: log it loudly
// and keep serving. (Request handlers already turn their own failures into typed errors.)
process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled promise rejection'));

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log.info({ signal }, 'shutting down');
    // SIGTERM is how orchestrators ask for a graceful stop; Ctrl-C means now.
    const stop = signal === 'SIGTERM' ? node.drain(config.drainDeadlineMs) : node.close();
    stop.then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
