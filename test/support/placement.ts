import { rendezvousScore } from '../../src/cluster/placement.js';

/**
 * The first `${prefix}-<i>` room id that rendezvous hashing gives to `owner` among `among` by a
 * wide margin (so small load differences cannot flip it) and that `accept` takes.
 */
export async function roomOwnedBy(owner: string, among: string[], prefix: string, accept: (room: string) => boolean | Promise<boolean> = () => true): Promise<string> {
  for (let i = 0; ; i++) {
    const room = `${prefix}-${i}`;
    const score = (id: string): number => rendezvousScore(room, { id, load: 0 });
    const others = among.filter((id) => id !== owner).map(score);
    if (score(owner) > 2 * Math.max(...others) && (await accept(room))) return room;
  }
}
