import { expect, test } from 'vitest';
import { addressKey } from '../../src/limits/connectionGuard.js';
import { addressCapWithin, openFileLimit } from '../../src/limits/fileDescriptors.js';

test('connections are counted per IPv4 address, and per /64 for IPv6 (one subscriber holds a whole /64)', () => {
  expect(addressKey('203.0.113.7')).toBe('203.0.113.7');
  expect(addressKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
  const key = addressKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd');
  expect(key).toBe('2001:db8:1:2::/64');
  expect(addressKey('2001:0DB8:0001:0002::9')).toBe(key);
  expect(addressKey('2001:db8:1:2::')).toBe(key);
  expect(addressKey('2001:db8:1:3::1')).not.toBe(key);
  expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
  expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  expect(addressKey(undefined)).toBe('unknown');
});

test("one address gets at most a quarter of the process' open files; the OS's limit is read from /proc/self/limits", () => {
  const limits = (soft: string): string =>
    `Limit                     Soft Limit           Hard Limit           Units\nMax processes             63704                63704                processes\nMax open files            ${soft}                 1048576              files\n`;
  expect(openFileLimit(() => limits('1024'))).toBe(1024);
  expect(openFileLimit(() => limits('unlimited'))).toBeUndefined();
  expect(openFileLimit(() => 'no such line')).toBeUndefined();
  expect(openFileLimit(() => {
    throw new Error('ENOENT');
  })).toBeUndefined();
  expect(openFileLimit()).toBeGreaterThan(0); // this machine's own
  expect(addressCapWithin(1000, 1024)).toBe(256);
  expect(addressCapWithin(1000, 1_048_576)).toBe(1000);
  expect(addressCapWithin(1000, undefined)).toBe(1000);
  expect(addressCapWithin(1000, 2)).toBe(1);
});
