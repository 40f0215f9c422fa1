// What the browser tests share: Debian's headless Chromium launched through Playwright
// (`playwright-core`), signing in at the test provider, and submitting a form.

import { chromium } from 'playwright-core';

// A headless Chromium. Without the background-networking flags Chromium floods the
// closed network.
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
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

export const mainText = async (page) => ((await page.textContent('main')) ?? '').replace(/\s+/g, ' ');

// Opens `path` and signs in at the provider as `login` if it asks; ends on `path`.
export async function openSignedIn(page, base, path, login) {
  await page.goto(base + path);
  const there = () => page.url().startsWith(base + path);
  for (let i = 0; i < 10 && !there(); i++) {
    await page.waitForLoadState('load');
    try {
      if (await page.$('input[name=login]')) {
        await page.fill('input[name=login]', login);
        await page.fill('input[name=password]', 'any');
        await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
      } else if (await page.$('input[name=prompt][value=consent]')) {
        await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
      } else {
        // countersign's callback page goes on by itself (meta refresh).
        await page.waitForURL((u) => u.href.startsWith(base + path), { timeout: 15000 });
      }
    } catch (e) {
      // A page that moved on by itself while it was looked at: look again.
      if (!String(e).includes('context was destroyed')) throw e;
    }
  }
  await page.waitForURL((u) => u.href.startsWith(base + path), { timeout: 15000 });
  await page.waitForLoadState('load');
}

// Clicks `selector` (a form's button): the answer's status and the page's text.
export async function submit(page, selector) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST'),
    page.click(selector),
  ]);
  await page.waitForLoadState('load');
  return { status: response.status(), text: await mainText(page) };
}
