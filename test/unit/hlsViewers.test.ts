import { expect, test } from 'vitest';
import { hlsViewersKey, ViewerCountReader, ViewerWindow } from '../../src/hls/viewers.js';

test('a viewer counts from its first playlist fetch until the window passes without another', () => {
  const window = new ViewerWindow(1000);
  expect(window.seen('a', 0)).toBe(true);
  expect(window.seen('b', 100)).toBe(true);
  // Reloading within the window: the same viewer, not a new one.
  expect(window.seen('a', 900)).toBe(false);
  expect(window.count(1050)).toBe(2);
  // b fetched last at 100: gone after 1100; a (900) stays until 1900.
  expect(window.count(1101)).toBe(1);
  expect(window.count(1901)).toBe(0);
  // Back after the window: counted as arriving again.
  expect(window.seen('a', 2000)).toBe(true);
  expect(window.count(2000)).toBe(1);
});

test('counts are read from the store at most once per interval per room, again after forget(), and 0 when unreadable', async () => {
  const reads: string[] = [];
  let stored: string | undefined = '3';
  let failing = false;
  const reader = new ViewerCountReader(async (key) => {
    reads.push(key);
    if (failing) throw new Error('store down');
    return stored;
  }, 500);
  expect(await reader.count('hall', 0)).toBe(3);
  stored = '5';
  // A burst of joins within the interval shares the read.
  expect(await reader.count('hall', 100)).toBe(3);
  expect(await reader.count('hall', 499)).toBe(3);
  expect(reads).toEqual([hlsViewersKey('hall')]);
  expect(await reader.count('hall', 500)).toBe(5);
  reader.forget('hall');
  stored = undefined;
  expect(await reader.count('hall', 600)).toBe(0);
  expect(await reader.count('other', 600)).toBe(0);
  failing = true;
  expect(await reader.count('down', 600)).toBe(0);
  expect(reads).toHaveLength(5);
});
