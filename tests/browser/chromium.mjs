// Debian's headless Chromium driven by playwright-core (its own browser download cannot work
// here): the executable and the flags every test run and the benchmark use.
import { chromium } from 'playwright-core';

/** The browser binary: $CHROMIUM or Debian's /usr/bin/chromium. */
export const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Flags for a quiet, isolated run (no sandbox in containers, no background network traffic). */
export const FLAGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/**
 * Launches headless Chromium with the profile folder `profile` (give it a fresh one) and FLAGS
 * plus `args`; other playwright options (viewport, ...) pass through.
 */
export function launch(profile, { args = [], ...options } = {}) {
  return chromium.launchPersistentContext(profile, { executablePath, headless: true, ...options, args: [...FLAGS, ...args] });
}
