import { expect, test } from 'vitest';
import { ViewerWindow } from '../../src/hls/viewers.js';

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
