import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Debian's chromium, headless; never a downloaded browser. */
export async function launchChromium(): Promise<Browser> {
  try {
    return await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  } catch (error) {
    throw new Error(
      `These tests need chromium at ${CHROMIUM} (set CHROMIUM_PATH): ${(error as Error).message}`,
    );
  }
}

/**
 * Console errors, page errors and CSP violations on every page of a context. Chrome reports a
 * CSP violation on the console whether or not JavaScript runs; with it on, the
 * securitypolicyviolation event is reported too.
 */
export function watchProblems(context: BrowserContext): { problems: string[]; watch(page: Page): void } {
  const problems: string[] = [];
  const watch = (page: Page) => {
    page.on('console', (message) => {
      const text = message.text();
      if (message.type() === 'error' || /content security policy/i.test(text))
        problems.push(`console: ${text}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  };
  context.on('page', watch);
  void context.addInitScript({
    content:
      "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));",
  });
  return { problems, watch };
}
