// The web UI in a real browser: Debian's headless Chromium, driven by Playwright
// (`playwright-core`). See tests/it/oidc_signin/web/chromium.rs, which starts the
// provider and countersign and checks afterwards what changed.
//
// Usage: node web.mjs '{"base","approve","stale","own","shots"}'
//   base     countersign's public URL (http://127.0.0.1:PORT)
//   approve  a request bob (dba) approves from the list
//   stale    a two-person request: bob shows it, dave approves it meanwhile, bob's
//            click must answer 409
//   key      a public key line: alice asks for prod-db with it through the new-request
//            form, with a reason that carries a <script>, and sees why she cannot
//            approve her own request
//   A form on another site (another loopback port) then posts an approval of `stale`
//   from bob's browser.
//   shots    a folder for screenshots of the request list and the review page
//
// Output: one JSON line on stdout with what each step saw. Exits 1 on an error.

import http from 'node:http';
import { launch, mainText, openSignedIn as signedIn, submit } from './ui.mjs';

const cfg = JSON.parse(process.argv[2]);
const out = { steps: [] };
const browser = await launch();

// A page of another site (another port of the same host: the same site to a browser, so
// the session cookie goes with its form): a form that posts an approval to countersign,
// with the session's real token and the request's real version (say they leaked).
const stolen = { csrf: 'guessed', version: 'x' };
const evil = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end(`<!doctype html><form method="post" action="${cfg.base}/requests/${cfg.stale}/approve">
    <input type="hidden" name="csrf" value="${stolen.csrf}">
    <input type="hidden" name="version" value="${stolen.version}">
    <button id="go" type="submit">Win a prize</button></form>`);
});
await new Promise((ok) => evil.listen(0, '127.0.0.1', ok));
const evilUrl = `http://127.0.0.1:${evil.address().port}/`;

// Opens `path` signed in as `login`, and notes the step.
async function openSignedIn(page, path, login) {
  out.steps.push(`${login} opens ${path}`);
  await signedIn(page, cfg.base, path, login);
}

let code = 1;
try {
  const bob = await (await browser.newContext({ viewport: { width: 1000, height: 700 } })).newPage();
  await openSignedIn(bob, '/', 'bob');
  out.list = await mainText(bob);
  if (cfg.shots) await bob.screenshot({ path: `${cfg.shots}/web-requests.png`, fullPage: true });

  // From the list to the review page, and approve.
  await Promise.all([bob.waitForNavigation(), bob.click(`a[href="/requests/${cfg.approve}"]`)]);
  out.review = await mainText(bob);
  if (cfg.shots) {
    // As an approver sees it on a phone at 3 a.m.
    await bob.setViewportSize({ width: 420, height: 900 });
    await bob.screenshot({ path: `${cfg.shots}/web-review.png`, fullPage: true });
    await bob.setViewportSize({ width: 1000, height: 700 });
  }
  out.approved = await submit(bob, '#approve');

  // A stale page: dave approves while bob looks; bob's click is refused.
  await bob.goto(`${cfg.base}/requests/${cfg.stale}`);
  const dave = await (await browser.newContext()).newPage();
  await openSignedIn(dave, `/requests/${cfg.stale}`, 'dave');
  out.daveApproved = await submit(dave, '#approve');
  out.stale = await submit(bob, '#approve');

  // alice asks through the form; on her own request: why she cannot approve; the
  // <script> in her reason stays text.
  const alice = await (await browser.newContext()).newPage();
  await openSignedIn(alice, '/requests/new', 'alice');
  await alice.selectOption('#role', 'prod-db');
  await alice.fill('#public_key', cfg.key);
  await alice.fill('#ttl', '45m');
  await alice.fill('#reason', 'INC-9 <script>window.pwned = 1</script>');
  out.created = await submit(alice, '#ask');
  out.ownUrl = alice.url();
  out.own = await mainText(alice);
  out.ownReason = (await alice.textContent('#reason')) ?? '';
  out.scriptRan = await alice.evaluate(() => window.pwned === 1);
  out.approveButtonForAlice = (await alice.$('#approve')) !== null;

  // Another site's form, in bob's browser (he is signed in): refused.
  await bob.goto(`${cfg.base}/requests/${cfg.stale}`);
  stolen.csrf = await bob.getAttribute('form[action$="/approve"] input[name=csrf]', 'value');
  stolen.version = await bob.getAttribute('form[action$="/approve"] input[name=version]', 'value');
  await bob.goto(evilUrl);
  out.forged = await submit(bob, '#go');
  code = 0;
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
  evil.close();
}
console.log(JSON.stringify(out));
process.exit(code);
