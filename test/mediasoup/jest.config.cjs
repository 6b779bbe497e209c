// mediasoup's own Node test suite, as shipped in its npm package (node/lib/test), run against the
// worker this project installed: the one built with Chorus's patch series
// (scripts/mediasoup/README.md). Jest, because the suite is written for it.
const path = require('node:path');

module.exports = {
  rootDir: path.resolve(__dirname, '../../node_modules/mediasoup/node/lib'),
  testMatch: ['<rootDir>/test/test-*.js'],
  // The suite lives inside node_modules, which Jest skips by default.
  testPathIgnorePatterns: [],
  haste: { retainAllFiles: true },
  testEnvironment: 'node',
  testTimeout: 30_000,
  globalSetup: path.join(__dirname, 'fixtures.cjs'),
};
