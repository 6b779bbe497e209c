import { expect, test } from 'vitest';
import { startupNotices } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';

test('bound to 0.0.0.0 in demo mode: the warning says every interface and how to close it', () => {
  const notices = startupNotices(loadConfig({ CHORUS_HOST: '0.0.0.0', CHORUS_PORT: '3000', CHORUS_DATA_DIR: '/srv/chorus-data' }));
  expect(notices.map((n) => n.level)).toEqual(['info', 'warn']);
  expect(notices[0]!.msg).toContain('/srv/chorus-data/api-keys.json');
  expect(notices[1]!.msg).toMatch(/every network interface \(0\.0\.0\.0:3000\)/);
  expect(notices[1]!.msg).toMatch(/CHORUS_API_KEYS.*CHORUS_HOST=127\.0\.0\.1/);
});

test('with API keys and demo off there is nothing to warn about', () => {
  expect(startupNotices(loadConfig({ CHORUS_API_KEYS: `prod:${'s'.repeat(40)}` }))).toEqual([]);
});
