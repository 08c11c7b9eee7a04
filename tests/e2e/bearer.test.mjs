// Authentication middleware end to end (issue 5) against a real OpenID Connect provider
// (npm oidc-provider, apps/oidc-idp.mjs) and the official MCP SDK:
//   1. middleware.http.bearer on the MCP server's appHttpPipeline refuses every bad token with
//      401 (none, garbage, expired, not yet valid, wrong iss, wrong aud, alg none, HS256 signed
//      with the RSA public key, unknown kid, a key carried in the token) and the app never sees
//      them; the 401 names the protected-resource metadata;
//   2. a valid token from the provider lets the official MCP client complete tools/call;
//   3. an MCP client that follows the MCP authorization spec (the SDK's ClientCredentialsProvider)
//      starts with no token, discovers the authorization server from the 401 and the RFC 9728
//      metadata served by the sidecar, gets a token and completes tools/call;
//   4. an agent whose sidecar has middleware.http.oauth2clientcredentials on its httpPipeline
//      (client secret from a local file secret store) reaches the protected server with no token
//      in its own code, and the provider sees one token request for many calls;
//   5. key rotation at the provider is picked up without restarting the sidecar.
import { before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { generateKeyPair, exportJWK, SignJWT } from 'jose';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { Harness, MCP_SERVER_APP, APPS_DIR, DIRECT, OUTRIGGER_BIN, HOOK_TIMEOUT, freePort, httpRequest, waitFor, appRequests, sleep } from './lib/harness.mjs';

const h = new Harness();
const skip = DIRECT ? 'E2E_DIRECT=1: needs real sidecars' : /fake-outrigger\.mjs$/.test(OUTRIGGER_BIN) ? 'the fake sidecar has no middleware' : false;
const IDP_APP = path.join(APPS_DIR, 'oidc-idp.mjs');

let home, idp, idpPort, issuer, keysFile, k1, k2, server, caller, agent, secretFile;

async function newKey(kid) {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
  return { kid, privateKey, publicKey, jwk, publicPem: crypto.createPublicKey(await exportJWK(publicKey).then((j) => ({ key: j, format: 'jwk' }))).export({ type: 'spki', format: 'pem' }) };
}

async function startIdp(keys) {
  fs.writeFileSync(keysFile, JSON.stringify({ keys: keys.map((k) => k.jwk) }));
  idp = await h.startNodeApp('idp', IDP_APP, { port: idpPort, env: { IDP_KEYS: keysFile, IDP_TOKEN_TTL: '300' } });
}

function writeResources(dir, files) {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
}

before(async () => {
  if (skip) return;
  home = h.tmpHome();
  const work = h.tmpHome('outrigger-bearer-');
  keysFile = path.join(work, 'keys.json');
  idpPort = await freePort();
  issuer = `http://127.0.0.1:${idpPort}`;
  k1 = await newKey('k1');
  k2 = await newKey('k2');
  await startIdp([k1]);

  // The MCP server: bearer on its appHttpPipeline.
  const serverRes = path.join(work, 'server');
  writeResources(serverRes, {
    'bearer.yaml': `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: mcp-auth
spec:
  type: middleware.http.bearer
  version: v1
  metadata:
  - name: issuer
    value: "${issuer}"
  - name: audience
    value: mcp-server
  - name: scopes
    value: mcp
`,
  });
  fs.writeFileSync(path.join(work, 'server-config.yaml'), `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: server
spec:
  appHttpPipeline:
    handlers:
    - name: mcp-auth
      type: middleware.http.bearer
`);
  const app = await h.startNodeApp('mcp-server-app', MCP_SERVER_APP, { env: { E2E_LOG_REQUESTS: '1' } });
  server = { app, sidecar: await h.startSidecar({ appId: 'mcp-server', appPort: app.port, home, extraArgs: ['--resources-path', serverRes, '--config', path.join(work, 'server-config.yaml')] }) };

  // A caller without middleware, and an agent whose sidecar gets tokens itself.
  caller = await h.startSidecar({ appId: 'plain-agent', home });
  secretFile = path.join(work, 'secrets.json');
  fs.writeFileSync(secretFile, JSON.stringify({ idp: { clientSecret: 'agent-secret' } }));
  const agentRes = path.join(work, 'agent');
  writeResources(agentRes, {
    'secrets.yaml': `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: localsecrets
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: "${secretFile}"
  - name: nestedSeparator
    value: ":"
`,
    'oauth.yaml': `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: idp-token
spec:
  type: middleware.http.oauth2clientcredentials
  version: v1
  metadata:
  - name: clientID
    value: agent
  - name: clientSecret
    secretKeyRef:
      name: "idp:clientSecret"
      key: "idp:clientSecret"
  - name: scopes
    value: mcp
  - name: tokenURL
    value: "${issuer}/token"
  - name: headerName
    value: Authorization
auth:
  secretStore: localsecrets
`,
  });
  fs.writeFileSync(path.join(work, 'agent-config.yaml'), `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: agent
spec:
  httpPipeline:
    handlers:
    - name: idp-token
      type: middleware.http.oauth2clientcredentials
`);
  agent = await h.startSidecar({ appId: 'token-agent', home, logLevel: 'debug', extraArgs: ['--resources-path', agentRes, '--config', path.join(work, 'agent-config.yaml')] });
}, HOOK_TIMEOUT);

const mcpPostHeaders = () => ({ 'content-type': 'application/json', accept: 'application/json, text/event-stream' });
const mcpUrl = (sc) => `${sc.url}/v1.0/invoke/mcp-server/method/mcp`;
const initBody = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });

async function sign(key, claims, { alg = 'RS256', kid = key.kid, header = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: issuer, aud: 'mcp-server', sub: 'someone', iat: now, exp: now + 300, ...claims })
    .setProtectedHeader({ alg, kid, typ: 'at+jwt', ...header })
    .sign(key.privateKey);
}

const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

async function providerToken() {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('agent:agent-secret').toString('base64')}` },
    body: 'grant_type=client_credentials&scope=mcp',
  });
  assert.equal(res.status, 200);
  return (await res.json()).access_token;
}

h.test('bearer refuses bad tokens with 401 and the app never sees them', { skip }, async () => {
  const now = Math.floor(Date.now() / 1000);
  const other = await newKey('zz');
  const valid = await sign(k1, {});
  const [hdr, payload] = valid.split('.');
  const cases = {
    none: undefined,
    garbage: 'Bearer abcdefghijklmnop',
    notBearer: `Basic ${Buffer.from('a:b').toString('base64')}`,
    expired: `Bearer ${await sign(k1, { iat: now - 4000, exp: now - 3600 })}`,
    notYetValid: `Bearer ${await sign(k1, { nbf: now + 3600 })}`,
    wrongIss: `Bearer ${await sign(k1, { iss: 'http://evil.example' })}`,
    wrongAud: `Bearer ${await sign(k1, { aud: 'someone-else' })}`,
    noExp: `Bearer ${await sign(k1, { exp: undefined })}`,
    algNone: `Bearer ${b64({ alg: 'none', kid: 'k1' })}.${payload}.`,
    hs256WithPublicKey: (() => {
      const head = b64({ alg: 'HS256', kid: 'k1', typ: 'JWT' });
      const sig = crypto.createHmac('sha256', k1.publicPem).update(`${head}.${payload}`).digest('base64url');
      return `Bearer ${head}.${payload}.${sig}`;
    })(),
    unknownKid: `Bearer ${await sign(other, {})}`,
    embeddedJwk: `Bearer ${await sign(other, {}, { kid: 'k1', header: { jwk: other.jwk.n ? { kty: 'RSA', n: other.jwk.n, e: other.jwk.e } : undefined } })}`,
    badSignature: `Bearer ${hdr}.${payload}.${valid.split('.')[2].slice(0, -4)}AAAA`,
  };
  const before = appRequests(server.app).length;
  for (const [name, auth] of Object.entries(cases)) {
    const headers = { ...mcpPostHeaders(), ...(auth ? { authorization: auth } : {}) };
    const res = await httpRequest(mcpUrl(caller), { method: 'POST', headers, body: initBody });
    assert.equal(res.status, 401, `${name}: ${res.status} ${res.text}`);
    assert.equal(res.text, 'Unauthorized', name);
    const www = res.headers.get('www-authenticate');
    assert.match(www, /^Bearer /, name);
    assert.ok(www.includes(`resource_metadata="${caller.url}/v1.0/invoke/mcp-server/method/.well-known/oauth-protected-resource/mcp"`), `${name}: ${www}`);
  }
  assert.equal(appRequests(server.app).length, before, 'a refused request reached the app');
  // The same valid token passes (so the refusals above were about the tokens).
  const ok = await httpRequest(mcpUrl(caller), { method: 'POST', headers: { ...mcpPostHeaders(), authorization: `Bearer ${valid}` }, body: initBody });
  assert.equal(ok.status, 200, ok.text);
});

h.test('a provider token lets the official MCP client call a tool', { skip }, async () => {
  const token = await providerToken();
  const { client } = await h.mcpClient(mcpUrl(caller), { headers: { authorization: `Bearer ${token}` } });
  const r = await client.callTool({ name: 'echo', arguments: { message: 'with a token' } });
  assert.equal(r.content[0].text, 'Echo: with a token');
  // The app got the token (bearer validates, it does not strip) and the caller identity.
  assert.ok(appRequests(server.app).some((x) => x.caller === 'plain-agent'));
});

h.test('an MCP client discovers the authorization server from the 401 and the metadata', { skip }, async () => {
  const meta = await httpRequest(`${caller.url}/v1.0/invoke/mcp-server/method/.well-known/oauth-protected-resource/mcp`);
  assert.equal(meta.status, 200, meta.text);
  const prm = JSON.parse(meta.text);
  assert.equal(prm.resource, mcpUrl(caller));
  assert.deepEqual(prm.authorization_servers, [issuer]);
  assert.deepEqual(prm.scopes_supported, ['mcp']);

  const authProvider = new ClientCredentialsProvider({ clientId: 'agent', clientSecret: 'agent-secret', scope: 'mcp' });
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl(caller)), { authProvider });
  const client = new Client({ name: 'spec-client', version: '1.0.0' });
  h.onCleanup(() => client.close());
  await client.connect(transport);
  const r = await client.callTool({ name: 'echo', arguments: { message: 'discovered' } });
  assert.equal(r.content[0].text, 'Echo: discovered');
  assert.ok(authProvider.tokens()?.access_token, 'the client obtained a token');
});

h.test('oauth2clientcredentials: the agent needs no token of its own; one token request for many calls', { skip }, async () => {
  const tokenRequests = () => (idp.output().match(/\[idp\] token request status=200/g) ?? []).length;
  const before = tokenRequests();
  const { client } = await h.mcpClient(mcpUrl(agent));
  for (let i = 0; i < 10; i++) {
    const r = await client.callTool({ name: 'echo', arguments: { message: `call ${i}` } });
    assert.equal(r.content[0].text, `Echo: call ${i}`);
  }
  assert.equal(tokenRequests() - before, 1, 'one token request for the token lifetime');
  assert.ok(appRequests(server.app).some((x) => x.caller === 'token-agent'));
  // The client secret and the token never reach the agent sidecar's (debug) log.
  const log = agent.proc.output();
  assert.ok(!log.includes('agent-secret'), 'client secret in the log');
  assert.ok(!/eyJ[\w-]{10,}\.[\w-]{10,}/.test(log), 'a token in the log');
});

h.test('key rotation at the provider is picked up without a restart', { skip }, async () => {
  await idp.kill();
  await startIdp([k2]);
  const token = await providerToken();
  assert.equal(JSON.parse(Buffer.from(token.split('.')[0], 'base64url')).kid, 'k2');
  // The first test's unknown kid refreshed the keys moments ago; refreshes are rate-limited
  // (10 s), so a client retrying gets in as soon as the next refresh is allowed.
  const t0 = Date.now();
  let res;
  await waitFor('the rotated key accepted', async () => {
    res = await httpRequest(mcpUrl(caller), { method: 'POST', headers: { ...mcpPostHeaders(), authorization: `Bearer ${token}` }, body: initBody });
    return res.status === 200;
  }, { timeoutMs: 15000, intervalMs: 500 });
  assert.ok(Date.now() - t0 < 12000);
  assert.match(server.sidecar.proc.output(), /key set refreshed/);
});
