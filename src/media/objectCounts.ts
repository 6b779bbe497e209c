/**
 * Live mediasoup objects of one worker, counted from mediasoup's own observer events as they are
 * made and closed, so a metrics scrape reads four numbers instead of asking every router for a
 * dump. Every transport kind counts (WebRTC, pipe, plain, direct), and so does everything made on
 * them (pipe producers and consumers included).
 */
import type { types } from 'mediasoup';

export interface ObjectCounts {
  routers: number;
  transports: number;
  producers: number;
  consumers: number;
}

export function countObjects(worker: types.Worker): ObjectCounts {
  const counts: ObjectCounts = { routers: 0, transports: 0, producers: 0, consumers: 0 };
  const track = (key: keyof ObjectCounts, item: { observer: { once(event: 'close', listener: () => void): unknown } }): void => {
    counts[key]++;
    item.observer.once('close', () => counts[key]--);
  };
  worker.observer.on('newrouter', (router) => {
    track('routers', router);
    router.observer.on('newtransport', (transport) => {
      track('transports', transport);
      transport.observer.on('newproducer', (producer) => track('producers', producer));
      transport.observer.on('newconsumer', (consumer) => track('consumers', consumer));
    });
  });
  return counts;
}
