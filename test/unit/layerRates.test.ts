import { describe, expect, test } from 'vitest';
import { allocate } from '../../src/media/layerPolicy.js';
import { priceLadder } from '../../src/media/layerRates.js';

/** The SDK's camera: three simulcast encodings capped at 150, 500 and 1,500 kbit/s, three temporal layers each. */
const CAPS = [150_000, 500_000, 1_500_000];

function prices(recent: Record<string, number[]>, caps: Array<number | undefined> = CAPS): Record<string, number> {
  return Object.fromEntries(priceLadder(3, 3, caps, new Map(Object.entries(recent))).map((r) => [`${r.spatial}.${r.temporal}`, r.bitrate]));
}

describe('what each layer costs', () => {
  test('a layer never measured is priced from its encoding cap, by temporal share', () => {
    expect(prices({})).toEqual({ '0.0': 75_000, '0.1': 112_500, '0.2': 150_000, '1.0': 250_000, '1.1': 375_000, '1.2': 500_000, '2.0': 750_000, '2.1': 1_125_000, '2.2': 1_500_000 });
  });

  test('three measures settle a layer at their median, below its nominal price too', () => {
    const settled = prices({ '1.0': [90_000, 120_000, 100_000], '1.1': [150_000, 160_000, 140_000], '1.2': [200_000, 210_000, 190_000] });
    expect(settled['1.0']).toBe(150_000); // held up to the smaller picture's whole (0.2, nominal 150)
    expect(settled['1.1']).toBe(150_000);
    expect(settled['1.2']).toBe(200_000);
  });

  test('an encoder that has just started is not taken at its first, low measures', () => {
    // Seen at a class's start: the base layers read 4 and 7 kbit/s; they settled at 60–240.
    const young = prices({ '0.0': [4_000], '1.0': [7_000], '1.1': [9_000, 300_000] });
    expect(young['0.0']).toBe(75_000);
    expect(young['1.0']).toBe(250_000);
    expect(young['1.1']).toBe(375_000);
    // A young measure above the nominal price stands.
    expect(prices({ '1.0': [320_000] })['1.0']).toBe(320_000);
  });

  test('no layer is priced under the one below it', () => {
    const ladder = priceLadder(3, 3, CAPS, new Map(Object.entries({ '0.2': [140_000, 150_000, 145_000], '1.0': [20_000, 30_000, 25_000], '1.1': [60_000, 70_000, 65_000] })));
    const bitrates = ladder.map((r) => r.bitrate);
    expect(bitrates).toEqual([...bitrates].sort((a, b) => a - b));
    expect(ladder.find((r) => r.spatial === 1 && r.temporal === 0)!.bitrate).toBe(145_000);
  });

  test('measures are held to the cap, and the peak of the last three is kept for climbing', () => {
    const ladder = priceLadder(3, 3, CAPS, new Map(Object.entries({ '0.2': [120_000, 400_000, 130_000] })));
    const top = ladder.find((r) => r.spatial === 0 && r.temporal === 2)!;
    expect(top.bitrate).toBe(130_000);
    expect(top.peak).toBe(150_000);
  });

  test('without caps, a layer is priced from a nominal three times the one below', () => {
    const nominal = prices({}, [undefined, undefined, undefined]);
    expect(nominal['0.2']).toBe(100_000);
    expect(nominal['1.2']).toBe(300_000);
    expect(nominal['2.2']).toBe(900_000);
  });

  test('priced so, a subscriber on a 350 kbit/s link is not put on the larger picture at the start', () => {
    // The first measures of a class's camera and the budget a 350 kbit/s link's first reading
    // left (85 % of 290 kbit/s, less 50 for audio). Priced at the raw measures, the larger
    // picture's base layer (7 kbit/s) fitted, and the student stalled for seconds on it.
    const recent = new Map(Object.entries({ '0.0': [4_000], '1.0': [7_000] }));
    const target = allocate(205_000, [{ id: 'camera', prioritised: true, area: 1280 * 720, maxSpatial: 2, maxTemporal: 2, ladder: priceLadder(3, 3, CAPS, recent), current: undefined, lastDownAt: 0, lastChangeAt: 0 }], 0);
    expect(target.get('camera')).toEqual({ spatial: 0, temporal: 2 });
  });
});
