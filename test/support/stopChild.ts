import type { ChildProcess } from 'node:child_process';

/**
 * Stops a child process politely: `ask` tells it to leave (close its stdin, send it a message),
 * and SIGKILL follows if it has not exited after `graceMs`. Resolves once it has exited.
 */
export async function stopChild(proc: ChildProcess, ask: () => void, graceMs = 8000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  ask();
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
