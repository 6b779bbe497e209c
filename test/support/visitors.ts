/**
 * People on a page in Chromium: each visitor in a context of its own, its page errors and
 * console errors collected, joined through the page's lobby (a name, then Join) and waited for
 * until the page says it is in.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';

export class Visitors {
  readonly contexts: BrowserContext[] = [];
  /** Every uncaught error and console error of every page, prefixed with the visitor's name. */
  readonly errors: string[] = [];

  constructor(
    private readonly browser: () => Browser,
    private readonly viewport = { width: 1000, height: 800 },
  ) {}

  /** `before`: a script run in the page before its own (e.g. blockWebRtc). */
  async join(name: string, url: string, before?: () => void): Promise<Page> {
    const context = await this.browser().newContext({ viewport: this.viewport });
    this.contexts.push(context);
    if (before) await context.addInitScript(before);
    const page = await context.newPage();
    page.on('pageerror', (error) => this.errors.push(`${name}: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') this.errors.push(`${name} console: ${message.text()}`);
    });
    await page.goto(url);
    await page.fill('#display-name', name);
    await page.click('#join');
    await page.waitForFunction(() => window.chorusDebug?.['state'] === 'joined', undefined, { timeout: 20_000, polling: 50 });
    return page;
  }

  async close(): Promise<void> {
    for (const context of this.contexts.splice(0)) await context.close();
  }
}
