/**
 * Plain JavaScript, so the compiled node (`dist/server/main.js`) can preload it as well as tsx can.
 * Preloaded (`--import`) into the Chorus node the benchmark starts, whose stdin is a pipe from the
 * benchmark: if the benchmark parent dies without cleaning up (SIGKILL, crash), the pipe closes,
 * and the node stops itself with SIGTERM, which closes its mediasoup workers. No orphan workers.
 * A pipe, not a timer polling the parent: the node under measurement must not wake for the bench.
 */
const stdin = process.stdin;
stdin.on('end', () => process.kill(process.pid, 'SIGTERM'));
stdin.on('error', () => process.kill(process.pid, 'SIGTERM'));
stdin.resume();
// Watching the pipe must not keep a node that is closing alive.
stdin.unref?.();
