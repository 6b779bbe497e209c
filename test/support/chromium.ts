/**
 * Debian's Chromium, headless, driven by playwright-core (which cannot download browsers here).
 * The flags every e2e test needs; each test adds its own (fake devices, muted audio).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const executablePath = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const baseArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--autoplay-policy=no-user-gesture-required',
];

export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  // A missing browser is a broken setup, not a reason to pass: say how to fix it.
  if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath}: run scripts/setup.sh --test`);
  return chromium.launch({ executablePath, args: [...baseArgs, ...extraArgs], headless: true });
}
