import type { ChorusNode } from '../../src/app.js';

/** Live mediasoup objects across every worker of a node, from the workers' own dumps. */
export async function mediaCounts(node: ChorusNode): Promise<{ routers: number; transports: number; producers: number; consumers: number }> {
  const totals = { routers: 0, transports: 0, producers: 0, consumers: 0 };
  for (const slot of node.workers.slots) {
    const worker = await slot.worker.dump();
    totals.routers += worker.routerIds.length;
  }
  for (const room of node.rooms.rooms.values()) {
    if (!room.media) continue;
    const d = await room.media.dump();
    totals.transports += d.transports;
    totals.producers += d.producers;
    totals.consumers += d.consumers;
  }
  return totals;
}
