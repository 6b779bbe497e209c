/**
 * The SDKs' API reference is generated from their sources (TypeDoc, `npm run docs`), with every
 * warning an error: a public type the entries forget to export, or a broken link, fails here.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, test } from 'vitest';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');
const out = mkdtempSync(join(tmpdir(), 'chorus-api-docs-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

test('the API reference of both packages generates without a warning, one page per public class and entry', async () => {
  await run(process.execPath, [join(root, 'node_modules/typedoc/bin/typedoc'), '--out', out], { cwd: root });
  for (const page of ['modules/_chorus-rtc_client.html', 'modules/_chorus-rtc_client_node.html', 'modules/_chorus-rtc_client_hls.html', 'modules/_chorus-rtc_server-sdk.html', 'classes/_chorus-rtc_client.CallClient.html', 'classes/_chorus-rtc_server-sdk.ChorusServer.html', 'functions/_chorus-rtc_server-sdk.mintToken.html']) {
    expect(existsSync(join(out, page)), page).toBe(true);
  }
  // The comments in the sources are the reference's text.
  expect(readFileSync(join(out, 'functions/_chorus-rtc_server-sdk.mintToken.html'), 'utf8')).toContain('A join token for');
}, 120_000);
