// Debian's Chromium driven by playwright-core, as every real-browser test runs it.
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Skips the suite where Chromium is not installed; in CI a missing browser is a failure. */
export function requireChromium(ctx: Mocha.Context): void {
  if (existsSync(CHROMIUM)) return;
  if (process.env.CI) throw new Error(`${CHROMIUM} is missing: CI must install Debian's chromium`);
  console.log(`    (skipped: ${CHROMIUM} not installed; apt-get install chromium to run it)`);
  ctx.skip();
}

/** Headless, without the background traffic (updates, sync, QUIC probes) that would reach the network. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
