// The suite reads a DTLS certificate and key from node/lib/test/data, which mediasoup's npm
// package does not ship. Made here, once, with the openssl CLI (scripts/setup.sh --test installs it).
const { execFileSync } = require('node:child_process');
const { existsSync, mkdirSync } = require('node:fs');
const path = require('node:path');

module.exports = async function fixtures() {
  const data = path.resolve(__dirname, '../../node_modules/mediasoup/node/lib/test/data');
  if (existsSync(path.join(data, 'dtls-cert.pem')) && existsSync(path.join(data, 'dtls-key.pem'))) return;
  mkdirSync(data, { recursive: true });
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '3650',
    '-subj', '/CN=mediasoup-test', '-keyout', path.join(data, 'dtls-key.pem'), '-out', path.join(data, 'dtls-cert.pem'),
  ], { stdio: 'ignore' });
};
