import { describe, expect, test } from 'vitest';
import { allocate, Climbs, deliveredBitrate, EstimateHistory, type Demand, type Rung } from '../../src/media/layerPolicy.js';

/** Three spatial layers of three temporal layers each, cumulative bitrates as mediasoup measures them. */
const ladder: Rung[] = [
  [0, 0, 50_000],
  [0, 1, 75_000],
  [0, 2, 100_000],
  [1, 0, 150_000],
  [1, 1, 225_000],
  [1, 2, 300_000],
  [2, 0, 500_000],
  [2, 1, 750_000],
  [2, 2, 1_000_000],
].map(([spatial, temporal, bitrate]) => ({ spatial: spatial!, temporal: temporal!, bitrate: bitrate! }));

const NOW = 100_000;
const rules = { headroom: 1, downHoldMs: 1000, pauseHoldMs: 2500, upHoldMs: 4000, upMargin: 2, maxUpHoldMs: 16_000 };

function camera(id: string, over: Partial<Demand> = {}): Demand {
  return { id, prioritised: false, area: 640 * 360, maxSpatial: 2, maxTemporal: 2, ladder, current: undefined, lastDownAt: 0, lastChangeAt: 0, ...over };
}

describe('the layer policy', () => {
  test('a new video gets the highest layer that fits, within its view', () => {
    expect(allocate(5_000_000, [camera('a')], NOW, rules).get('a')).toEqual({ spatial: 2, temporal: 2 });
    expect(allocate(5_000_000, [camera('a', { maxSpatial: 1 })], NOW, rules).get('a')).toEqual({ spatial: 1, temporal: 2 });
    expect(allocate(5_000_000, [camera('a', { maxSpatial: 0, maxTemporal: 1 })], NOW, rules).get('a')).toEqual({ spatial: 0, temporal: 1 });
  });

  test('temporal layers go first: a tight budget keeps the larger picture at a lower frame rate', () => {
    expect(allocate(200_000, [camera('a')], NOW, rules).get('a')).toEqual({ spatial: 1, temporal: 0 });
    expect(allocate(140_000, [camera('a')], NOW, rules).get('a')).toEqual({ spatial: 0, temporal: 2 });
  });

  test('down at most once per second, straight to what fits', () => {
    const high = camera('a', { current: { spatial: 2, temporal: 2 }, lastDownAt: NOW - 500, lastChangeAt: NOW - 500 });
    expect(allocate(200_000, [high], NOW, rules).get('a')).toEqual({ spatial: 2, temporal: 2 });
    expect(allocate(200_000, [{ ...high, lastDownAt: NOW - 1000 }], NOW, rules).get('a')).toEqual({ spatial: 1, temporal: 0 });
  });

  test('up towards the edge of the estimate only after the hold since the last change, then as far as fits', () => {
    const low = camera('a', { current: { spatial: 0, temporal: 0 }, lastDownAt: NOW - 1000, lastChangeAt: NOW - 1000 });
    expect(allocate(1_100_000, [low], NOW, rules).get('a')).toEqual({ spatial: 0, temporal: 0 });
    expect(allocate(1_100_000, [{ ...low, lastChangeAt: NOW - 4000 }], NOW, rules).get('a')).toEqual({ spatial: 2, temporal: 2 });
  });

  test('with room to spare (twice the cost) up is at once: a tile enlarged on a good link', () => {
    const low = camera('a', { current: { spatial: 0, temporal: 0 }, lastDownAt: NOW - 1000, lastChangeAt: NOW - 100 });
    expect(allocate(2_000_000, [low], NOW, rules).get('a')).toEqual({ spatial: 2, temporal: 2 });
  });

  test('climbing needs a rung to fit at its recent peak (an encoder\'s dip makes a layer look cheap); staying on it does not', () => {
    // The 1.0 layer measures 150 kbit/s now but cost 400 kbit/s in the last seconds.
    const dipped = ladder.map((r) => (r.spatial === 1 && r.temporal === 0 ? { ...r, peak: 400_000 } : r));
    const low = camera('a', { ladder: dipped, current: { spatial: 0, temporal: 2 }, lastDownAt: 0, lastChangeAt: 0 });
    expect(allocate(200_000, [low], NOW, rules).get('a')).toEqual({ spatial: 0, temporal: 2 });
    expect(allocate(200_000, [{ ...low, ladder }], NOW, rules).get('a')).toEqual({ spatial: 1, temporal: 0 });
    // Already on it: its current price counts.
    expect(allocate(200_000, [{ ...low, current: { spatial: 1, temporal: 0 } }], NOW, rules).get('a')).toEqual({ spatial: 1, temporal: 0 });
  });

  test('a view shrinking below the current layer is followed at once', () => {
    const high = camera('a', { current: { spatial: 2, temporal: 2 }, lastDownAt: NOW, lastChangeAt: NOW, maxSpatial: 0 });
    expect(allocate(5_000_000, [high], NOW, rules).get('a')).toEqual({ spatial: 0, temporal: 2 });
  });

  test('the larger tile is served first; the smaller gets what is left', () => {
    const decided = allocate(400_000, [camera('small', { area: 160 * 90 }), camera('big')], NOW, rules);
    expect(decided.get('big')).toEqual({ spatial: 1, temporal: 2 });
    expect(decided.get('small')).toEqual({ spatial: 0, temporal: 2 });
  });

  test('a prioritised track keeps its lowest layer; other video pauses before it', () => {
    const screen: Demand = camera('screen', { prioritised: true, area: 100, ladder: [{ spatial: 0, temporal: 0, bitrate: 600_000 }], maxSpatial: 0, maxTemporal: 0 });
    const decided = allocate(500_000, [camera('cam'), screen], NOW, rules);
    expect(decided.get('screen')).toEqual({ spatial: 0, temporal: 0 });
    expect(decided.get('cam')).toBe('off');
  });

  test('the first in line is never paused (a transport with no video flowing could never probe its way back)', () => {
    expect(allocate(10_000, [camera('a')], NOW, rules).get('a')).toEqual({ spatial: 0, temporal: 0 });
  });

  test('pausing and resuming follow the holds too', () => {
    const first = camera('first', { area: 10_000_000, current: { spatial: 0, temporal: 0 }, lastChangeAt: NOW - 10_000, lastDownAt: NOW - 10_000 });
    // Just stepped down: not paused within the second.
    const second = camera('second', { current: { spatial: 0, temporal: 0 }, lastDownAt: NOW - 200, lastChangeAt: NOW - 200 });
    expect(allocate(60_000, [first, second], NOW, rules).get('second')).toEqual({ spatial: 0, temporal: 0 });
    expect(allocate(60_000, [first, { ...second, lastDownAt: NOW - 1000 }], NOW, rules).get('second')).toBe('off');
    // Paused a moment ago: not resumed within the up hold, even with room for it.
    const paused = { ...second, current: 'off' as const, lastChangeAt: NOW - 1000 };
    expect(allocate(5_000_000, [first, paused], NOW, rules).get('second')).toBe('off');
    expect(allocate(5_000_000, [first, { ...paused, lastChangeAt: NOW - 4000 }], NOW, rules).get('second')).toEqual({ spatial: 2, temporal: 2 });
  });

  test('a dip of the estimate shorter than the pause hold steps layers down but pauses nothing; one that lasts pauses', () => {
    const first = camera('first', { area: 10_000_000, current: { spatial: 0, temporal: 0 }, lastChangeAt: NOW - 10_000, lastDownAt: NOW - 10_000 });
    const second = camera('second', { current: { spatial: 1, temporal: 2 }, lastDownAt: NOW - 10_000, lastChangeAt: NOW - 10_000 });
    // The lowest estimate of the up hold leaves 60 kbit/s; the highest in force over the pause hold, plenty.
    const brief = allocate(60_000, [first, second], NOW, rules, 1_000_000);
    expect(brief.get('second')).toEqual({ spatial: 0, temporal: 0 });
    expect(brief.get('first')).toEqual({ spatial: 0, temporal: 0 });
    // The dip has lasted the pause hold.
    expect(allocate(60_000, [first, second], NOW, rules, 60_000).get('second')).toBe('off');
    // A new video is not paused on a moment's dip either.
    expect(allocate(60_000, [first, camera('new')], NOW, rules, 1_000_000).get('new')).toEqual({ spatial: 0, temporal: 0 });
  });

  test('a paused video resumes on the lowest estimate of the up hold, not on a moment\'s rise', () => {
    const first = camera('first', { area: 10_000_000, current: { spatial: 0, temporal: 0 }, lastChangeAt: NOW - 10_000, lastDownAt: NOW - 10_000 });
    const paused = camera('second', { current: 'off', lastDownAt: NOW - 10_000, lastChangeAt: NOW - 10_000 });
    expect(allocate(60_000, [first, paused], NOW, rules, 1_000_000).get('second')).toBe('off');
    expect(allocate(1_000_000, [first, paused], NOW, rules, 1_000_000).get('second')).not.toBe('off');
  });

  test('nothing measured yet: the video is left as it is', () => {
    expect(allocate(5_000_000, [camera('a', { ladder: [] })], NOW, rules).has('a')).toBe(false);
  });

  test('a demand\'s own up hold, when it has one, holds its climbs and its resumes', () => {
    const low = camera('a', { current: { spatial: 0, temporal: 0 }, lastDownAt: NOW - 5000, lastChangeAt: NOW - 5000, upHoldMs: 8000 });
    expect(allocate(1_100_000, [low], NOW, rules).get('a')).toEqual({ spatial: 0, temporal: 0 });
    expect(allocate(1_100_000, [{ ...low, lastChangeAt: NOW - 8000 }], NOW, rules).get('a')).toEqual({ spatial: 2, temporal: 2 });
    const first = camera('first', { area: 10_000_000, current: { spatial: 0, temporal: 0 }, lastChangeAt: NOW - 10_000, lastDownAt: NOW - 10_000 });
    const paused = camera('second', { current: 'off', lastDownAt: NOW - 5000, lastChangeAt: NOW - 5000, upHoldMs: 8000 });
    expect(allocate(5_000_000, [first, paused], NOW, rules).get('second')).toBe('off');
    expect(allocate(5_000_000, [first, { ...paused, upHoldMs: undefined }], NOW, rules).get('second')).toEqual({ spatial: 2, temporal: 2 });
  });
});

describe('the up hold after climbs', () => {
  const low = { spatial: 0, temporal: 0 };
  const high = { spatial: 2, temporal: 2 };

  test('a climb that comes back down within its hold doubles the next hold, up to the most', () => {
    const climbs = new Climbs(rules);
    let t = NOW;
    climbs.changed(undefined, low, t);
    expect(climbs.holdMs(t)).toBe(4000);
    const seen: number[] = [];
    for (let i = 0; i < 4; i++) {
      t += climbs.holdMs(t);
      climbs.changed(low, high, t);
      t += 1500;
      climbs.changed(high, low, t);
      seen.push(climbs.holdMs(t));
    }
    expect(seen).toEqual([8000, 16_000, 16_000, 16_000]);
    // Paused right after a resume fails the same way.
    const paused = new Climbs(rules);
    paused.changed(low, 'off', NOW);
    paused.changed('off', low, NOW + 4000);
    paused.changed(low, 'off', NOW + 5000);
    expect(paused.holdMs(NOW + 5000)).toBe(8000);
  });

  test('a climb that lasts its hold resets it; a step down that follows no climb changes nothing', () => {
    const climbs = new Climbs(rules);
    climbs.changed(low, high, NOW);
    climbs.changed(high, low, NOW + 1000);
    expect(climbs.holdMs(NOW + 1000)).toBe(8000);
    climbs.changed(low, high, NOW + 9000);
    // Not yet lasted: the grown hold stands.
    expect(climbs.holdMs(NOW + 16_999)).toBe(8000);
    expect(climbs.holdMs(NOW + 17_000)).toBe(4000);
    // Down long after the climb held: the link changed, the climb did not fail.
    climbs.changed(high, low, NOW + 30_000);
    expect(climbs.holdMs(NOW + 30_000)).toBe(4000);
    // The first choice for a video is not a climb.
    const fresh = new Climbs(rules);
    fresh.changed(undefined, high, NOW);
    fresh.changed(high, low, NOW + 100);
    expect(fresh.holdMs(NOW + 100)).toBe(4000);
  });
});

describe('a downlink\'s estimates', () => {
  test('the lowest of a span counts a dip at once and a rise once it has lasted', () => {
    const history = new EstimateHistory(600_000, 4000);
    expect(history.lowest(0, 4000)).toBe(600_000);
    history.add(0, 1_000_000);
    history.add(1000, 130_000);
    history.add(1300, 900_000);
    expect(history.lowest(1300, 4000)).toBe(130_000);
    expect(history.lowest(5000, 4000)).toBe(130_000);
    expect(history.lowest(5400, 4000)).toBe(900_000);
    // Nothing that recent: the newest reading.
    expect(history.lowest(60_000, 4000)).toBe(900_000);
  });

  test('the highest in force over a span: a dip counts once it has lasted the span', () => {
    const history = new EstimateHistory(600_000, 4000);
    // Before any reading, the initial estimate was in force; a first low reading has not lasted.
    history.add(10_000, 130_000);
    expect(history.highestInForce(10_000, 1000)).toBe(600_000);
    expect(history.highestInForce(11_001, 1000)).toBe(130_000);
    history.add(11_500, 900_000);
    history.add(12_000, 120_000);
    // 900k was in force within the last second; then, a second after the dip began, only 120k.
    expect(history.highestInForce(12_400, 1000)).toBe(900_000);
    expect(history.highestInForce(13_001, 1000)).toBe(120_000);
    // Long after, the reading in force when the span began is kept (older ones are dropped).
    history.add(20_000, 100_000);
    expect(history.highestInForce(20_500, 1000)).toBe(120_000);
    expect(history.highestInForce(21_001, 1000)).toBe(100_000);
  });

  test('a receiver losing a tenth or more of what was sent: the link carried about the rest', () => {
    // RTCP's fraction lost is out of 256; 26 is 10 %.
    expect(deliveredBitrate(500_000, 0)).toBeUndefined();
    expect(deliveredBitrate(500_000, 25)).toBeUndefined();
    expect(deliveredBitrate(500_000, 26)).toBeCloseTo(449_219, 0);
    expect(deliveredBitrate(500_000, 128)).toBe(250_000);
    expect(deliveredBitrate(500_000, 255)).toBeCloseTo(1953, 0);
    // Nothing sent, nothing learnt.
    expect(deliveredBitrate(0, 128)).toBeUndefined();
    // As a reading among the estimates: layers step down on it at once; a pause waits for a dip
    // that lasts (a single report is not one).
    const history = new EstimateHistory(600_000, 4000);
    history.add(1000, 2_000_000);
    history.add(2000, deliveredBitrate(500_000, 160)!);
    history.add(2100, 1_500_000);
    expect(history.lowest(2100, 4000)).toBeCloseTo(187_500, 0);
    expect(history.highestInForce(2100, 2500)).toBe(2_000_000);
  });

  test('a link that starts carrying video again: its idle readings are no evidence for a pause', () => {
    const history = new EstimateHistory(600_000, 4000);
    // Idle (peer-to-peer, say): the estimate sits at what little the link carried.
    history.add(1000, 200_000);
    history.add(2000, 200_000);
    history.restart(5000);
    expect(history.highestInForce(5500, 2500)).toBe(600_000);
    // A higher last reading stays in force.
    const fast = new EstimateHistory(600_000, 4000);
    fast.add(1000, 2_000_000);
    fast.restart(5000);
    expect(fast.highestInForce(5500, 2500)).toBe(2_000_000);
    // A low estimate that lasts the hold after the restart counts.
    history.add(5200, 150_000);
    expect(history.highestInForce(7800, 2500)).toBe(150_000);
    // Climbs still go by the lowest of the up hold.
    expect(history.lowest(5500, 4000)).toBe(150_000);
  });
});
