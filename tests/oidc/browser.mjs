// A real browser for the sign-in tests: Debian's headless Chromium, driven by Playwright
// (`playwright-core`, which downloads no browser). See tests/it/idp/chromium.rs.
//
// Usage: node browser.mjs START_URL LOGIN PASSWORD
//   Opens START_URL and goes through a sign-in the way a person would: fills the
//   provider's sign-in form with LOGIN and PASSWORD, confirms its consent page, clicks
//   "Continue" on countersign's loopback confirmation page and "Yes, it is me" on its
//   device confirmation page, until a page says the sign-in is over.
//
// Environment: CHROMIUM, the browser's path (default /usr/bin/chromium).
//
// Output: one JSON line on stdout, {"url","text","steps"}: where the browser ended and
// the text of that page. Exits 1 (with the same line) when no end page came in 12 steps.

import { launch } from './ui.mjs';

const [start, login, password] = process.argv.slice(2);
const browser = await launch();
const ENDS = ['Signed in to countersign', 'You signed in as', 'Sign-in failed', 'Login refused'];
let result = { url: '', text: '', steps: [] };
let code = 1;
try {
  const page = await (await browser.newContext()).newPage();
  // One action that leads to another page: wait for that page.
  const act = async (name, fn) => {
    result.steps.push(name);
    await Promise.all([page.waitForNavigation({ waitUntil: 'load', timeout: 15000 }), fn()]);
  };
  await act('open', () => page.goto(start));
  for (let i = 0; i < 12; i++) {
    const text = (await page.textContent('body')) ?? '';
    if (ENDS.some((end) => text.includes(end))) {
      code = 0;
      break;
    }
    if (await page.$('input[name=login]')) {
      await page.fill('input[name=login]', login);
      await page.fill('input[name=password]', password);
      await act('provider sign-in', () => page.click('button[type=submit]'));
    } else if (await page.$('input[name=prompt][value=consent]')) {
      await act('provider consent', () => page.click('button[type=submit]'));
    } else if (await page.$('a#continue')) {
      await act('countersign continue', () => page.click('a#continue'));
    } else if (await page.$('button[value=confirm]')) {
      await act('countersign device confirm', () => page.click('button[value=confirm]'));
    } else {
      break;
    }
  }
  result.url = page.url();
  result.text = (await page.textContent('body')) ?? '';
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(code);
