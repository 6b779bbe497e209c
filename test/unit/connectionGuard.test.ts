import { expect, test } from 'vitest';
import { addressKey } from '../../src/limits/connectionGuard.js';

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
