/**
 * Plain JavaScript, so the compiled node (`dist/server/main.js`) can preload it as well as tsx can.
 * Preloaded (`--import`) into the Chorus node the benchmark starts: if the benchmark parent dies
 * without cleaning up (SIGKILL, crash), the node notices within a second that it was re-parented
 * and stops itself with SIGTERM, which closes its mediasoup workers. No orphan workers.
 */
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.kill(process.pid, 'SIGTERM');
}, 1000).unref();
