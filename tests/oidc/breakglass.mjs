// The break-glass review page in a real browser (Debian's headless Chromium through
// Playwright). See tests/it/oidc_signin/web/breakglass.rs, which starts the provider and
// countersign, breaks the glass, and checks afterwards what changed.
//
// Usage: node breakglass.mjs '{"base","use","shots"}'
//   base   countersign's public URL
//   use    a break-glass use of alice's: erin (a reviewer) finds it waiting for her in the
//          list, opens its page and gives an
//          `unjustified` verdict, which revokes it; alice, the invoker, is shown why she
//          cannot review her own use, and no form
//   shots  a folder for a screenshot of the review page
//
// Output: one JSON line on stdout with what each step saw. Exits 1 on an error.

import { launch, mainText, openSignedIn, submit } from './ui.mjs';

const cfg = JSON.parse(process.argv[2]);
const out = {};
const browser = await launch();
let code = 1;
try {
  const path = `/requests/${cfg.use}`;
  const erin = await (await browser.newContext({ viewport: { width: 420, height: 900 } })).newPage();
  await openSignedIn(erin, cfg.base, '/', 'erin');
  out.list = await mainText(erin);
  await Promise.all([erin.waitForNavigation(), erin.click(`a[href="${path}"]`)]);
  out.before = await mainText(erin);
  if (cfg.shots) await erin.screenshot({ path: `${cfg.shots}/web-breakglass.png`, fullPage: true });
  await erin.fill('#review-comment', 'no incident was open at that time');
  out.reviewed = await submit(erin, '#unjustified');
  out.reviewFormAfter = (await erin.$('#unjustified')) !== null;

  const alice = await (await browser.newContext()).newPage();
  await openSignedIn(alice, cfg.base, path, 'alice');
  out.own = await mainText(alice);
  out.reviewFormForAlice = (await alice.$('#review-comment')) !== null;
  code = 0;
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(code);
