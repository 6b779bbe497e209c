import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { stamp } from '../../src/records/nodeRecorder.js';
import { SpillFile } from '../../src/records/spill.js';

function events(n: number, from = 0) {
  return Array.from({ length: n }, (_, i) => stamp({ kind: 'event', type: `t${from + i}`, node: 'n', data: { i: from + i } }));
}

describe('the records spill file', () => {
  test('reads back what was appended, in order, in chunks that resume at the returned offset', async () => {
    const spill = new SpillFile(join(mkdtempSync(join(tmpdir(), 'chorus-spill-')), 'records', 'spill.jsonl'));
    const written = [...events(3), ...events(4, 3)];
    await spill.append(written.slice(0, 3));
    await spill.append(written.slice(3));
    const first = await spill.read(0, 5);
    const second = await spill.read(first.next, 5);
    expect([...first.records, ...second.records]).toEqual(written);
    expect(first.records).toHaveLength(5);
    expect(second.next).toBe(spill.bytes);
    expect((await spill.read(second.next, 5)).records).toEqual([]);
  });

  test('a torn last line (a crash mid-write) and a garbled line are skipped, the valid records kept', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'chorus-spill-')), 'spill.jsonl');
    const spill = new SpillFile(path);
    const [a, b] = events(2);
    await spill.append([a!]);
    appendFileSync(path, '{"not":"a record"}\n');
    await spill.append([b!]);
    appendFileSync(path, '{"id":"torn');
    const reopened = new SpillFile(path);
    const all = await reopened.read(0, 100);
    expect(all.records).toEqual([a, b]);
    expect(all.skipped).toBe(2);
    expect(all.next).toBe(reopened.bytes);
  });

  test('clear() removes the contents only if nothing was appended after what the caller committed', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'chorus-spill-')), 'spill.jsonl');
    const spill = new SpillFile(path);
    await spill.append(events(2));
    const committed = (await spill.read(0, 100)).next;
    await spill.append(events(1, 2));
    expect(await spill.clear(committed)).toBe(false);
    expect((await spill.read(0, 100)).records).toHaveLength(3);
    expect(await spill.clear(spill.bytes)).toBe(true);
    expect(spill.bytes).toBe(0);
    expect(readFileSync(path, 'utf8')).toBe('');
  });
});
