// A real OpenID provider (the `oidc-provider` package) for the integration tests: see
// tests/it/idp.rs, which starts it as `node tests/oidc/provider.mjs` and drives it.
//
// Environment:
//   IDP_PORT          port on 127.0.0.1 (0 or unset: a free one). The issuer is
//                     `http://127.0.0.1:PORT`, without a trailing slash. Restarting on the
//                     same port right after the previous process died works (Node listens
//                     with SO_REUSEADDR).
//   IDP_STATE         path of the state file (JSON, below). Required.
//   IDP_ID_TOKEN_TTL  ID token lifetime in seconds when the state file has no
//                     `id_token_ttl` (default 3600).
//
// Output: exactly one line on stdout, `ready http://127.0.0.1:PORT`, once listening; every
// diagnostic (oidc-provider's notices and warnings, errors) goes to stderr. The process
// exits when its stdin closes, so a test's child dies with the test: run it by hand with
// stdin left open (from a terminal, or `sleep infinity | node provider.mjs`).
//
// The state file is read again on every use, so a test can change it while the provider
// runs (write it whole and rename it into place: a half-written file fails the request):
//   {
//     "clients": [{"client_id": "countersign", "client_secret": "...",
//                  "redirect_uris": ["http://127.0.0.1:1234/v1/oidc/callback"],
//                  "token_endpoint_auth_method": "client_secret_basic"}],
//     "accounts": {"alice": {"sub": "sub-alice", "preferred_username": "alice",
//                            "email": "alice@example.com", "groups": ["okta-dba"]}},
//     "keys_generation": 1,
//     "keys_keep_previous": false,
//     "id_token_ttl": 3600,
//     "auth_time_offset": 0
//   }
// - clients: oidc-provider client metadata (a change takes effect on the next request, as
//   do the fields below). Defaults added to each: grant_types
//   authorization_code and refresh_token, response_types code, require_auth_time true (so
//   every ID token carries auth_time). PKCE with S256 is required of every client.
// - accounts: read on every look-up. The key is the login typed in the sign-in form; an
//   account's fields are its claims (`sub` is the subject, the login when absent; the
//   account is found again by its `sub`, so keep it stable; the rest reach the ID token
//   with the scopes openid, profile (name, preferred_username, ...), email (email,
//   email_verified) and groups (groups)). An account with a `password` field accepts only
//   that password; without one, any password. An unknown login or a wrong password ends
//   the sign-in with `error=access_denied` sent back to the client's redirect_uri (no
//   second try on the form). An account removed from the file is gone at once: its
//   sessions and refresh tokens find no account any more.
// - keys_generation: the signing key's generation (a number, default 1). Changing it
//   rotates the keys at once, without a restart: each generation has its own RS256 key
//   (made on first use, kept for the life of the process), its kid is
//   `gen<N>-<thumbprint prefix>`, new ID tokens are signed with it, and the JWKS lists it
//   (first). With `keys_keep_previous: true` the JWKS also lists the keys of the
//   generations this process made before (as an IdP does during a rollover); by default
//   only the current one. Sessions, codes and refresh tokens survive a rotation (one store), so a
//   code issued before it is redeemed for an ID token signed with the new key.
// - id_token_ttl: ID token lifetime in seconds, read at each issue.
// - auth_time_offset: seconds subtracted from the time of a sign-in, so that its
//   auth_time lies in the past (for max_age tests). Default 0.
// - id_token_claims: an object merged into the payload of every ID token the token
//   endpoint answers, which is then signed again with the current key (as a provider
//   that gets it wrong, or an attacker holding its key, would): e.g. {"aud": "other-app"}
//   or {"nonce": "..."}. Default none.
// - jwks_generation: the JWKS lists only this generation's key (made if need be), while
//   tokens are still signed with keys_generation's: tokens signed by a key not in the
//   JWKS. Default none.

import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';

// oidc-provider prints its notices with console.info (stdout): stdout is for the ready
// line alone.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

const { default: Provider } = await import('oidc-provider');

const statePath = process.env.IDP_STATE;
if (!statePath) {
  console.error('IDP_STATE is not set');
  process.exit(2);
}
const port = Number(process.env.IDP_PORT || 0);
const defaultIdTokenTtl = Number(process.env.IDP_ID_TOKEN_TTL || 3600);

function readState() {
  return JSON.parse(readFileSync(statePath, 'utf8'));
}

function generationOf(state) {
  return Number(state.keys_generation ?? 1);
}

// One RS256 key per generation, in the order first used.
const keys = new Map();
function keyFor(generation) {
  let jwk = keys.get(generation);
  if (!jwk) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    jwk = privateKey.export({ format: 'jwk' });
    const thumbprint = createHash('sha256')
      .update(JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n }))
      .digest('base64url');
    jwk = { ...jwk, kid: `gen${generation}-${thumbprint.slice(0, 8)}`, alg: 'RS256', use: 'sig' };
    keys.set(generation, jwk);
  }
  return jwk;
}

// Shared by every generation's provider, so their cookies stay valid across a rotation.
const cookieKeys = [randomBytes(32).toString('hex')];

// One in-memory store for every generation's provider (oidc-provider's own memory adapter
// makes a store per provider instance): sessions, interactions, codes, grants and tokens
// survive a key rotation. Entries expire; nothing outlives the process.
const store = new Map();
class SharedMemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    store.set(this.key(id), { payload, expiresAt });
  }

  async find(id) {
    const entry = store.get(this.key(id));
    if (!entry) {
      return undefined;
    }
    if (entry.expiresAt <= Date.now()) {
      store.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  async findByUid(uid) {
    for (const [key] of store) {
      if (key.startsWith(`${this.model}:`)) {
        const payload = await this.find(key.slice(this.model.length + 1));
        if (payload?.uid === uid) {
          return payload;
        }
      }
    }
    return undefined;
  }

  async findByUserCode(userCode) {
    for (const [key] of store) {
      if (key.startsWith(`${this.model}:`)) {
        const payload = await this.find(key.slice(this.model.length + 1));
        if (payload?.userCode === userCode) {
          return payload;
        }
      }
    }
    return undefined;
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) {
      entry.payload.consumed = Math.floor(Date.now() / 1000);
    }
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const [key, entry] of store) {
      if (key.startsWith(`${this.model}:`) && entry.payload.grantId === grantId) {
        store.delete(key);
      }
    }
  }
}

// The accountId is the subject: oidc-provider puts it in the tokens' `sub`. A login's
// subject is its account's `sub`, or the login itself when it has none.
function subjectOf(login, account) {
  return String(account.sub ?? login);
}

async function findAccount(ctx, sub) {
  const found = Object.entries(readState().accounts ?? {})
    .find(([login, account]) => subjectOf(login, account) === sub);
  if (!found) {
    return undefined;
  }
  const { password, ...claims } = found[1];
  return {
    accountId: sub,
    async claims() {
      return { ...claims, sub };
    },
  };
}

function makeProvider(issuer, generation, state) {
  const current = keyFor(generation);
  const older = state.keys_keep_previous
    ? [...keys.entries()].filter(([g]) => g !== generation).map(([, jwk]) => jwk)
    : [];
  const clients = (state.clients ?? []).map((client) => ({
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    require_auth_time: true,
    ...client,
  }));
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [current, ...older] },
    cookies: { keys: cookieKeys },
    adapter: SharedMemoryAdapter,
    findAccount,
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username', 'given_name', 'family_name'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    // Without this, scope claims go to userinfo only, not to the ID token.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 60,
      Grant: 3600,
      IdToken: () => Number(readState().id_token_ttl ?? defaultIdTokenTtl),
      Interaction: 600,
      RefreshToken: 86400,
      Session: 3600,
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    features: { devInteractions: { enabled: false } },
    // HS256 (keyed with a client's secret) is offered, as some providers do, so that a
    // test can check the relying party refuses it; clients get RS256 unless they ask.
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'HS256'] },
    async renderError(ctx, out, error) {
      ctx.type = 'html';
      ctx.body = page('Error', `<pre id="error">${escape(JSON.stringify(out, null, 2))}</pre>`);
      console.error('oidc error:', error);
    },
  });
  // Why a request was refused, for the test's failure message (Idp::log).
  for (const event of ['server_error', 'authorization.error', 'grant.error',
    'userinfo.error', 'jwks.error', 'discovery.error', 'end_session.error']) {
    provider.on(event, (ctx, error) => console.error(
      `oidc ${event}: ${error?.message ?? error}${error?.error_detail ? ` (${error.error_detail})` : ''}`,
    ));
  }
  return provider;
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body><h1>${escape(title)}</h1>
${body}
</body></html>
`;
}

function loginPage(uid, params) {
  return page('Sign-in', `<form autocomplete="off" action="/interaction/${escape(uid)}" method="post">
<input type="hidden" name="prompt" value="login"/>
<input required type="text" name="login" placeholder="login" value="${escape(params.login_hint ?? '')}"/>
<input required type="password" name="password" placeholder="password"/>
<button type="submit">Sign-in</button>
</form>
<a href="/interaction/${escape(uid)}/abort">Cancel</a>`);
}

function consentPage(uid, params, details) {
  const scopes = (details.missingOIDCScope ?? []).map((s) => `<li>${escape(s)}</li>`).join('');
  return page('Authorize', `<p>${escape(params.client_id)} asks for:</p>
<ul id="scopes">${scopes}</ul>
<form autocomplete="off" action="/interaction/${escape(uid)}" method="post">
<input type="hidden" name="prompt" value="consent"/>
<button type="submit">Continue</button>
</form>
<a href="/interaction/${escape(uid)}/abort">Cancel</a>`);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) {
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, html) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(html);
}

// The sign-in and consent pages (what devInteractions would show, without its web font,
// and with the logins of the state file).
async function interaction(provider, req, res, path) {
  const [uid, action] = path.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    send(res, 400, page('Error', '<p id="error">interaction mismatch</p>'));
    return;
  }
  const { prompt, params, session } = details;
  if (action === 'abort' && req.method === 'GET') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }
  if (action !== undefined) {
    send(res, 404, page('Error', '<p id="error">not found</p>'));
    return;
  }
  if (req.method === 'GET') {
    if (prompt.name === 'login') {
      send(res, 200, loginPage(uid, params));
    } else if (prompt.name === 'consent') {
      send(res, 200, consentPage(uid, params, prompt.details));
    } else {
      send(res, 501, page('Error', `<p id="error">prompt ${escape(prompt.name)}</p>`));
    }
    return;
  }
  if (req.method !== 'POST') {
    send(res, 405, page('Error', '<p id="error">method not allowed</p>'));
    return;
  }
  const form = await readForm(req);
  if (form.get('prompt') === 'login' && prompt.name === 'login') {
    const state = readState();
    const login = form.get('login') ?? '';
    const account = Object.hasOwn(state.accounts ?? {}, login) ? state.accounts[login] : undefined;
    if (!account || (account.password !== undefined && account.password !== form.get('password'))) {
      await provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'unknown login or wrong password',
      }, { mergeWithLastSubmission: false });
      return;
    }
    const ts = Math.floor(Date.now() / 1000) - Number(state.auth_time_offset ?? 0);
    await provider.interactionFinished(req, res, {
      login: { accountId: subjectOf(login, account), ts },
    }, { mergeWithLastSubmission: false });
    return;
  }
  if (form.get('prompt') === 'consent' && prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) {
      grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    }
    if (missing.missingOIDCClaims) {
      grant.addOIDCClaims(missing.missingOIDCClaims);
    }
    if (missing.missingResourceScopes) {
      for (const [indicator, scope] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scope.join(' '));
      }
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
    return;
  }
  send(res, 400, page('Error', `<p id="error">unexpected submission for prompt ${escape(prompt.name)}</p>`));
}

let issuer;
const providers = new Map();

// One oidc-provider instance per configuration seen: a change of keys_generation,
// keys_keep_previous or clients makes a new one (they share one store and cookie keys).
function currentProvider() {
  const state = readState();
  const generation = generationOf(state);
  const config = JSON.stringify([generation, Boolean(state.keys_keep_previous), state.clients]);
  let entry = providers.get(config);
  if (!entry) {
    const provider = makeProvider(issuer, generation, state);
    entry = { provider, callback: provider.callback() };
    providers.set(config, entry);
  }
  return entry;
}

// `idToken` with `changes` merged into its payload, signed again with the current key.
function resign(idToken, changes) {
  const [header, payload] = idToken.split('.');
  const claims = { ...JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')), ...changes };
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const key = createPrivateKey({ key: keyFor(generationOf(readState())), format: 'jwk' });
  return `${input}.${sign('RSA-SHA256', Buffer.from(input), key).toString('base64url')}`;
}

// The token endpoint's answer with its ID token changed by `changes` (id_token_claims).
function rewriteIdToken(res, changes) {
  const chunks = [];
  const end = res.end.bind(res);
  res.write = (chunk) => {
    chunks.push(Buffer.from(chunk));
    return true;
  };
  res.end = (chunk, ...rest) => {
    if (chunk && typeof chunk !== 'function') {
      chunks.push(Buffer.from(chunk));
    }
    let body = Buffer.concat(chunks).toString('utf8');
    try {
      const answer = JSON.parse(body);
      if (answer.id_token) {
        answer.id_token = resign(answer.id_token, changes);
        body = JSON.stringify(answer);
      }
    } catch {
      // Not JSON: passed on as it is.
    }
    if (!res.headersSent) {
      res.setHeader('Content-Length', Buffer.byteLength(body));
    }
    return end(body);
  };
}

const server = http.createServer(async (req, res) => {
  try {
    const { provider, callback } = currentProvider();
    const { pathname } = new URL(req.url, issuer);
    const state = readState();
    if (pathname === '/jwks' && state.jwks_generation !== undefined) {
      const { d, p, q, dp, dq, qi, ...pub } = keyFor(Number(state.jwks_generation));
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ keys: [pub] }));
      return;
    }
    if (pathname === '/token' && state.id_token_claims) {
      rewriteIdToken(res, state.id_token_claims);
    }
    if (pathname.startsWith('/interaction/')) {
      await interaction(provider, req, res, pathname.slice('/interaction/'.length));
    } else {
      callback(req, res);
    }
  } catch (error) {
    console.error('request failed:', error);
    if (!res.headersSent) {
      send(res, 500, page('Error', `<pre id="error">${escape(error?.stack ?? error)}</pre>`));
    } else {
      res.end();
    }
  }
});

server.listen(port, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  try {
    currentProvider();
  } catch (error) {
    console.error('the provider does not start:', error);
    process.exit(1);
  }
  process.stdout.write(`ready ${issuer}\n`);
});
server.on('error', (error) => {
  console.error('listen failed:', error);
  process.exit(1);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();
