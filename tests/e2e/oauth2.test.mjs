// middleware.http.oauth2 (authorization-code flow, issue 5) end to end against a real OpenID
// Connect provider (npm oidc-provider, apps/oidc-idp.mjs, auto login + consent):
//
//   browser (node fetch, manual redirects, cookie jar)
//     -> gateway sidecar (no app)  http://<gw>/v1.0/invoke/webapp/method/...
//     -> webapp sidecar, oauth2 on its appHttpPipeline -> raw-app (echoes the headers it got)
//
//   1. a browser without a session is sent to the provider, follows its redirects, comes back to
//      the redirect URL (on the gateway) with code + state, and ends at the URL it first asked
//      for, where the app sees `Authorization: Bearer <provider's JWT>`; later requests carry the
//      session cookie and go straight through (a header the browser sends under the same name is
//      replaced); the app never sees the callback or an unauthenticated request;
//   2. a forged state gets 400 "invalid state" (with and without the session cookie), a callback
//      without code 400 "code not found";
//   3. a tampered session cookie starts a new login;
//   4. a session ends with its token's lifetime;
//   5. the client secret, the codes and the tokens never reach the sidecar's (debug) log.
import { before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { generateKeyPair, exportJWK, jwtVerify, createRemoteJWKSet } from 'jose';
import { Harness, RAW_APP, APPS_DIR, DIRECT, OUTRIGGER_BIN, HOOK_TIMEOUT, freePort, appRequests, sleep } from './lib/harness.mjs';

const h = new Harness();
const skip = DIRECT ? 'E2E_DIRECT=1: needs real sidecars' : /fake-outrigger\.mjs$/.test(OUTRIGGER_BIN) ? 'the fake sidecar has no middleware' : false;
const IDP_APP = path.join(APPS_DIR, 'oidc-idp.mjs');
const TOKEN_TTL_S = 8; // short, so that test 4 can watch a session end
const COOKIE = 'outrigger_oauth2.webapp.login';

let idp, issuer, app, gw, web, redirectUri, secureRedirectUri;

/**
 * A browser without a browser: fetch with redirect: 'manual' and a cookie jar keyed by host name
 * (like a browser, cookies ignore the port; paths are ignored, which only sends more cookies).
 */
class Browser {
  constructor() {
    this.jar = new Map(); // hostname -> Map(name -> value)
  }

  cookies(url) {
    return this.jar.get(new URL(url).hostname) ?? new Map();
  }

  cookie(url, name) {
    return this.cookies(url).get(name);
  }

  setCookie(url, name, value) {
    const host = new URL(url).hostname;
    if (!this.jar.has(host)) this.jar.set(host, new Map());
    this.jar.get(host).set(name, value);
  }

  async get(url, headers = {}) {
    const jar = this.cookies(url);
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { redirect: 'manual', headers: { ...(cookie ? { cookie } : {}), ...headers }, signal: AbortSignal.timeout(15000) });
    const setCookies = res.headers.getSetCookie();
    for (const sc of setCookies) {
      const [pair, ...attrs] = sc.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const gone = attrs.some((a) => /^max-age=(0|-)/i.test(a) || (/^expires=/i.test(a) && Date.parse(a.slice(8)) < Date.now()));
      if (gone) this.cookies(url).delete(name);
      else this.setCookie(url, name, value);
    }
    const text = await res.text();
    return { url, status: res.status, location: res.headers.get('location'), setCookies, headers: res.headers, text };
  }

  /** GETs url and follows redirects; returns every hop (the last one is the answer). */
  async follow(url, { max = 15, headers = {} } = {}) {
    const hops = [];
    for (let i = 0; i < max; i++) {
      const r = await this.get(url, headers);
      hops.push(r);
      if (r.status < 300 || r.status > 399 || !r.location) return hops;
      url = new URL(r.location, url).href;
      if (url.startsWith('https:')) return hops; // nothing here speaks TLS
    }
    throw new Error(`more than ${max} redirects: ${hops.map((x) => `${x.status} ${x.url}`).join(' -> ')}`);
  }
}

const pageUrl = (p) => `${gw.url}/v1.0/invoke/webapp/method/${p}`;

before(async () => {
  if (skip) return;
  const home = h.tmpHome();
  const work = h.tmpHome('outrigger-oauth2-');
  // The gateway the browser talks to: its URL is where the provider sends the browser back.
  gw = await h.startSidecar({ appId: 'browser-gw', home });
  redirectUri = `${gw.url}/v1.0/invoke/webapp/method/callback`;

  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const keysFile = path.join(work, 'keys.json');
  fs.writeFileSync(keysFile, JSON.stringify({ keys: [{ ...(await exportJWK(privateKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] }));
  const idpPort = await freePort();
  issuer = `http://127.0.0.1:${idpPort}`;
  secureRedirectUri = `${gw.url}/v1.0/invoke/webapp/method/secure/callback`;
  idp = await h.startNodeApp('idp', IDP_APP, { port: idpPort, env: { IDP_KEYS: keysFile, IDP_TOKEN_TTL: String(TOKEN_TTL_S), IDP_REDIRECT_URI: `${redirectUri},${secureRedirectUri}` } });

  const res = path.join(work, 'resources');
  fs.mkdirSync(res);
  fs.writeFileSync(path.join(res, 'oauth2.yaml'), `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: login
spec:
  type: middleware.http.oauth2
  version: v1
  metadata:
  - name: clientID
    value: webapp
  - name: clientSecret
    value: webapp-secret
  - name: scopes
    value: "openid,mcp"
  - name: authURL
    value: "${issuer}/auth"
  - name: tokenURL
    value: "${issuer}/token"
  - name: redirectURL
    value: "${redirectUri}"
  - name: authHeaderName
    value: Authorization
  - name: pathFilter
    value: "^/(echo|callback)"
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: secure-login
spec:
  type: middleware.http.oauth2
  version: v1
  metadata:
  - name: clientID
    value: webapp
  - name: clientSecret
    value: webapp-secret
  - name: scopes
    value: openid
  - name: authURL
    value: "${issuer}/auth"
  - name: tokenURL
    value: "${issuer}/token"
  - name: redirectURL
    value: "${secureRedirectUri}"
  - name: forceHTTPS
    value: "true"
  - name: pathFilter
    value: "^/secure"
`);
  const cfg = path.join(work, 'config.yaml');
  fs.writeFileSync(cfg, `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: webapp
spec:
  appHttpPipeline:
    handlers:
    - name: login
      type: middleware.http.oauth2
    - name: secure-login
      type: middleware.http.oauth2
`);
  app = await h.startNodeApp('webapp-app', RAW_APP, { env: { E2E_LOG_REQUESTS: '1' } });
  web = await h.startSidecar({ appId: 'webapp', appPort: app.port, home, logLevel: 'debug', extraArgs: ['--resources-path', res, '--config', cfg] });
}, HOOK_TIMEOUT);

const seen = () => appRequests(app).map((r) => r.url);
const codes = []; // every authorization code the provider handed out (test 5 looks for them)

async function login(browser, url) {
  const hops = await browser.follow(url);
  for (const hop of hops) {
    const loc = hop.location && new URL(hop.location, hop.url);
    if (loc && loc.href.startsWith(redirectUri) && loc.searchParams.get('code')) codes.push(loc.searchParams.get('code'));
  }
  return hops;
}

let browser, firstToken;

h.test('a browser-less client completes the authorization-code flow and the app sees the token', { skip }, async () => {
  browser = new Browser();
  const original = pageUrl('echo/page?x=1&y=two%20words');
  const before = seen().length;
  const hops = await login(browser, original);
  const trail = hops.map((x) => `${x.status} ${x.url}`).join('\n  ');

  // 1. The sidecar sends the browser to the provider with a fresh session cookie.
  assert.equal(hops[0].status, 302, trail);
  const auth = new URL(hops[0].location);
  assert.equal(`${auth.origin}${auth.pathname}`, `${issuer}/auth`);
  assert.equal(auth.searchParams.get('response_type'), 'code');
  assert.equal(auth.searchParams.get('client_id'), 'webapp');
  assert.equal(auth.searchParams.get('redirect_uri'), redirectUri);
  assert.equal(auth.searchParams.get('scope'), 'openid mcp');
  assert.equal(auth.searchParams.get('access_type'), 'offline');
  const state = auth.searchParams.get('state');
  assert.match(state, /^[\w-]{32}$/);
  assert.equal(hops[0].setCookies.length, 1);
  assert.match(hops[0].setCookies[0], new RegExp(`^${COOKIE.replace(/\./g, '\\.')}=[\\w-]{22}\\.[\\w-]{43}; Path=/; Max-Age=600; HttpOnly; SameSite=Lax$`));
  const loginCookie = hops[0].setCookies[0].split(';')[0].slice(COOKIE.length + 1);

  // 2. The provider's redirects end at the redirect URL on the gateway, with code and state.
  const cb = hops.find((x) => x.url.startsWith(redirectUri));
  assert.ok(cb, `no callback hop:\n  ${trail}`);
  const cbUrl = new URL(cb.url);
  assert.equal(cbUrl.searchParams.get('state'), state);
  assert.ok(cbUrl.searchParams.get('code'));
  // 3. The callback exchanges the code, rotates the session id and goes back to the original URL.
  assert.equal(cb.status, 302, `${cb.status} ${cb.text}`);
  assert.equal(cb.location, original);
  assert.equal(cb.setCookies.length, 1);
  assert.notEqual(browser.cookie(gw.url, COOKIE), loginCookie, 'the session id changes at login');

  // 4. The original URL, now with the header the middleware added.
  const last = hops.at(-1);
  assert.equal(last.url, original);
  assert.equal(last.status, 200, last.text);
  const echo = JSON.parse(last.text);
  assert.equal(echo.path, '/echo/page');
  assert.equal(echo.query, 'x=1&y=two%20words');
  assert.match(echo.headers.authorization, /^Bearer eyJ/);
  firstToken = echo.headers.authorization.slice(7);
  const { payload } = await jwtVerify(firstToken, createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, audience: 'mcp-server' });
  assert.equal(payload.sub, 'alice');
  assert.equal(echo.headers['dapr-caller-app-id'], 'browser-gw');

  // The app saw exactly that one request: not the unauthenticated first try, not the callback.
  assert.deepEqual(seen().slice(before), ['/echo/page?x=1&y=two%20words']);

  // 5. The session carries on: no redirect; a header of the same name from the browser is replaced.
  const again = await browser.get(pageUrl('echo/other'), { authorization: 'Bearer forged-by-the-client' });
  assert.equal(again.status, 200, again.text);
  assert.equal(JSON.parse(again.text).headers.authorization, `Bearer ${firstToken}`);
  // The old (pre-login) session id is worthless now.
  const stale = new Browser();
  stale.setCookie(gw.url, COOKIE, loginCookie);
  const r = await stale.get(pageUrl('echo/other'));
  assert.equal(r.status, 302);
  assert.ok(r.location.startsWith(`${issuer}/auth?`));
  // Paths outside pathFilter are not guarded.
  const free = await new Browser().get(pageUrl('status/200'));
  assert.equal(free.status, 200);
});

h.test('a forged state gets 400 "invalid state"; a callback without code 400 "code not found"', { skip }, async () => {
  const b = new Browser();
  const start = await b.get(pageUrl('echo/forged'));
  assert.equal(start.status, 302);
  const state = new URL(start.location).searchParams.get('state');
  const before = seen().length;

  const forged = await b.get(`${redirectUri}?state=${'A'.repeat(32)}&code=some-code`);
  assert.equal(forged.status, 400);
  assert.equal(forged.text, 'invalid state');
  assert.match(forged.headers.get('content-type'), /^text\/plain/);
  // The real state from another browser (no session cookie) is no better.
  const elsewhere = await new Browser().get(`${redirectUri}?state=${state}&code=some-code`);
  assert.equal(elsewhere.status, 400);
  assert.equal(elsewhere.text, 'invalid state');
  // The provider came back without a code (e.g. the user declined).
  const noCode = await b.get(`${redirectUri}?state=${state}&error=access_denied`);
  assert.equal(noCode.status, 400);
  assert.equal(noCode.text, 'code not found');
  // A made-up code with the real state: the provider refuses it, the exchange fails with 500.
  const badCode = await b.get(`${redirectUri}?state=${state}&code=not-a-real-code`);
  assert.equal(badCode.status, 500);
  assert.equal(badCode.text, 'Internal Server Error');
  // That state was used up.
  const replay = await b.get(`${redirectUri}?state=${state}&code=not-a-real-code`);
  assert.equal(replay.status, 400);
  assert.equal(replay.text, 'invalid state');
  assert.equal(seen().length, before, 'the app saw a callback');
  assert.match(web.proc.output(), /code exchange at .*\/token failed: token endpoint answered 400 invalid_grant/);
});

h.test('a tampered session cookie starts a new login', { skip }, async () => {
  const good = browser.cookie(gw.url, COOKIE);
  const [id, mac] = good.split('.');
  const flip = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  const before = seen().length;
  for (const bad of [`${flip(id, 3)}.${mac}`, `${id}.${flip(mac, 10)}`, `${id}.`, 'garbage']) {
    browser.setCookie(gw.url, COOKIE, bad);
    const r = await browser.get(pageUrl('echo/tampered'));
    assert.equal(r.status, 302, `${bad}: ${r.status} ${r.text}`);
    assert.ok(r.location.startsWith(`${issuer}/auth?`), r.location);
    assert.notEqual(browser.cookie(gw.url, COOKIE), bad, 'a new session cookie is issued');
  }
  assert.equal(seen().length, before, 'a request with a tampered cookie reached the app');
  // The untampered cookie still works, and a new login completes too.
  browser.setCookie(gw.url, COOKIE, good);
  assert.equal((await browser.get(pageUrl('echo/ok'))).status, 200);
  const b = new Browser();
  b.jar = new Map([...browser.jar].map(([k, v]) => [k, new Map(v)])); // keeps the provider's session
  b.setCookie(gw.url, COOKIE, 'garbage');
  const hops = await login(b, pageUrl('echo/relogin'));
  assert.equal(hops.at(-1).status, 200, hops.map((x) => `${x.status} ${x.url}`).join('\n'));
  assert.match(JSON.parse(hops.at(-1).text).headers.authorization, /^Bearer eyJ/);
});

h.test('a session ends with its token', { skip }, async () => {
  const b = new Browser();
  const hops = await login(b, pageUrl('echo/short'));
  assert.equal(hops.at(-1).status, 200);
  assert.equal((await b.get(pageUrl('echo/short'))).status, 200);
  await sleep(TOKEN_TTL_S * 1000 + 1500);
  const r = await b.get(pageUrl('echo/short'));
  assert.equal(r.status, 302, 'the expired session must log in again');
  assert.ok(r.location.startsWith(`${issuer}/auth?`));
});

h.test('forceHTTPS: a Secure cookie and the way back over https', { skip }, async () => {
  const b = new Browser();
  const hops = await login(b, pageUrl('secure/page?q=1'));
  const trail = hops.map((x) => `${x.status} ${x.url} -> ${x.location}`).join('\n  ');
  assert.equal(hops[0].status, 302, trail);
  assert.match(hops[0].setCookies[0], /^outrigger_oauth2\.webapp\.secure-login=[\w.-]+; Path=\/; Max-Age=600; HttpOnly; SameSite=Lax; Secure$/);
  assert.equal(new URL(hops[0].location).searchParams.get('redirect_uri'), secureRedirectUri);
  const cb = hops.at(-1);
  assert.ok(cb.url.startsWith(`${secureRedirectUri}?`), trail);
  assert.equal(cb.status, 302, trail);
  assert.equal(cb.location, `${pageUrl('secure/page?q=1').replace(/^http:/, 'https:')}`);
  assert.match(cb.setCookies[0], /; Secure$/);
  // Each middleware keeps its own sessions: this one does not log the browser in for /echo.
  assert.equal((await b.get(pageUrl('echo/x'))).status, 302);
});

h.test('the client secret, codes and tokens never reach the sidecar log', { skip }, async () => {
  const log = web.proc.output() + gw.proc.output();
  assert.match(web.proc.output(), /login completed/);
  assert.doesNotMatch(web.proc.output(), /pathFilter does not match/);
  assert.ok(!log.includes('webapp-secret'), 'client secret in the log');
  assert.ok(codes.length >= 2, 'codes were collected');
  for (const c of codes) assert.ok(!log.includes(c), 'an authorization code in the log');
  assert.ok(!log.includes(firstToken), 'the token in the log');
  assert.ok(!/eyJ[\w-]{10,}\.[\w-]{10,}/.test(log), 'a JWT in the log');
});
