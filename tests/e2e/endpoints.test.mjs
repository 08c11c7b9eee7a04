// HTTPEndpoint resources and full-URL targets (spec dapr.md §1.6), secret stores and references
// (§8): a "remote" MCP server (server-everything, streamable HTTP) behind an API-key gate on
// another port, reached by the official MCP client through a sidecar by endpoint name, with the
// key coming from a local file secret store; the same over HTTPS with the endpoint's clientTLS
// root CA; full-URL targets; the secrets API; and the key never in the sidecar's debug log.
import { before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { generateKeyPair, exportJWK } from 'jose';
import {
  APPS_DIR,
  RAW_APP,
  Harness,
  HOOK_TIMEOUT,
  OUTRIGGER_BIN,
  freePort,
  httpRequest,
  needsSidecar,
  packageFile,
  waitFor,
} from './lib/harness.mjs';

const EVERYTHING = packageFile('@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const GATE = path.join(APPS_DIR, 'auth-gate.mjs');
const SECRET = `sk-live-${crypto.randomBytes(12).toString('hex')}`;
const h = new Harness();
let dir, sc, gate, gateTls, gateMtls;

function openssl(args) {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA and a server certificate for DNS:localhost only, in dir. */
function makeCerts() {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=e2e test CA', '-keyout', 'ca.key', '-out', 'ca.pem']);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost',
    '-keyout', 'server.key', '-out', 'server.csr']);
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1',
    '-extfile', 'ext.cnf', '-out', 'server.pem']);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=agent-client',
    '-keyout', 'client.key', '-out', 'client.csr']);
  openssl(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1',
    '-out', 'client.pem']);
}

const indent = (text, n) => text.trimEnd().split('\n').map((l) => ' '.repeat(n) + l).join('\n');

function resources(gatePort, tlsPort, mtlsPort) {
  const ca = fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8');
  const ep = (name, baseUrl, extra = '') =>
    `apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata:\n  name: ${name}\nspec:\n  baseUrl: ${baseUrl}\n${extra}`;
  const keyFromStore = '  headers:\n  - name: X-Api-Key\n    secretKeyRef:\n      name: everything-key\n      key: everything-key\n';
  const tls = `  clientTLS:\n    rootCA:\n      value: |\n${indent(ca, 8)}\n`;
  return [
    `apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: localsecrets\nspec:\n  type: secretstores.local.file\n  version: v1\n  metadata:\n  - name: secretsFile\n    value: ${path.join(dir, 'secrets.json')}\n`,
    ep('remote-mcp', `http://127.0.0.1:${gatePort}`, `${keyFromStore}auth:\n  secretStore: localsecrets\n`),
    ep('remote-mcp-nokey', `http://127.0.0.1:${gatePort}/`),
    ep('remote-mcp-tls', `https://localhost:${tlsPort}`, `  headers:\n  - name: x-api-key\n    envRef: E2E_GATE_KEY\n${tls}`),
    ep('remote-mcp-tls-wrong-name', `https://127.0.0.1:${tlsPort}`, `  headers:\n  - name: x-api-key\n    envRef: E2E_GATE_KEY\n${tls}`),
    ep('not-for-us', `http://127.0.0.1:${gatePort}`, 'scopes:\n- someone-else\n'),
    `apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pems\nspec:\n  type: secretstores.local.file\n  metadata:\n  - name: secretsFile\n    value: ${path.join(dir, 'pems.json')}\n`,
    ep('remote-mcp-mtls', `https://localhost:${mtlsPort}`,
      `${keyFromStore.replace('secretKeyRef:\n      name: everything-key\n      key: everything-key', 'envRef: E2E_GATE_KEY')}${tls}` +
      '    certificate:\n      secretKeyRef: {name: client-cert, key: client-cert}\n' +
      '    privateKey:\n      secretKeyRef: {name: client-key, key: client-key}\nauth:\n  secretStore: pems\n'),
    ep('remote-mcp-mtls-nocert', `https://localhost:${mtlsPort}`, `  headers:\n  - name: x-api-key\n    envRef: E2E_GATE_KEY\n${tls}`),
  ].join('---\n');
}

before(async () => {
  if (needsSidecar) return;
  dir = h.tmpHome('outrigger-endpoints-');
  makeCerts();
  fs.writeFileSync(path.join(dir, 'secrets.json'), JSON.stringify({ 'everything-key': SECRET, nested: { a: 1 }, hidden: 'nope', 'idp-secret': 'agent-secret' }));
  const everything = await h.startNodeApp('everything', EVERYTHING, { args: ['streamableHttp'] });
  const upstream = `http://127.0.0.1:${everything.port}`;
  gate = await h.startNodeApp('gate', GATE, { env: { UPSTREAM: upstream, GATE_SECRET: SECRET } });
  gateTls = await h.startNodeApp('gate-tls', GATE, {
    env: { UPSTREAM: upstream, GATE_SECRET: SECRET, TLS_CERT: path.join(dir, 'server.pem'), TLS_KEY: path.join(dir, 'server.key') },
  });
  gateMtls = await h.startNodeApp('gate-mtls', GATE, {
    env: {
      UPSTREAM: upstream,
      GATE_SECRET: SECRET,
      TLS_CERT: path.join(dir, 'server.pem'),
      TLS_KEY: path.join(dir, 'server.key'),
      TLS_CLIENT_CA: path.join(dir, 'ca.pem'),
    },
  });
  fs.writeFileSync(
    path.join(dir, 'pems.json'),
    JSON.stringify({
      'client-cert': fs.readFileSync(path.join(dir, 'client.pem'), 'utf8'),
      'client-key': fs.readFileSync(path.join(dir, 'client.key'), 'utf8'),
    }),
  );
  fs.mkdirSync(path.join(dir, 'resources'));
  fs.writeFileSync(path.join(dir, 'resources', 'endpoints.yaml'), resources(gate.port, gateTls.port, gateMtls.port));
  fs.writeFileSync(
    path.join(dir, 'config.yaml'),
    'apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: cfg\nspec:\n  mtls:\n    enabled: false\n' +
      '  secrets:\n    scopes:\n    - storeName: localsecrets\n      defaultAccess: allow\n      deniedSecrets: ["hidden"]\n',
  );
  sc = await h.startSidecar({
    appId: 'agent',
    home: dir,
    logLevel: 'debug',
    env: { E2E_GATE_KEY: SECRET },
    extraArgs: ['--resources-path', path.join(dir, 'resources'), '--config', path.join(dir, 'config.yaml')],
  });
}, HOOK_TIMEOUT);

async function echo(client, text) {
  const { tools } = await client.listTools();
  assert.ok(tools.some((t) => t.name === 'echo'), 'server-everything tools listed');
  const r = await client.callTool({ name: 'echo', arguments: { message: text } });
  assert.match(r.content[0].text, new RegExp(text));
}

/** The gate's counters (over HTTPS, trusting the test CA, for the TLS gate). */
async function stats(g) {
  if (g !== gateTls) return (await httpRequest(`http://127.0.0.1:${g.port}/gate/stats`)).json;
  const ca = fs.readFileSync(path.join(dir, 'ca.pem'));
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', servername: 'localhost', port: g.port, path: '/gate/stats', ca }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(JSON.parse(body)));
      })
      .on('error', reject);
  });
}

h.test('MCP client reaches a remote server by HTTPEndpoint name; the key comes from the file store', { skip: needsSidecar }, async () => {
  const before = await stats(gate);
  const { client } = await h.mcpClient(`${sc.url}/v1.0/invoke/remote-mcp/method/mcp`);
  await echo(client, 'hello endpoint');
  await client.close();
  const after = await stats(gate);
  assert.ok(after.accepted >= before.accepted + 3, `gate accepted ${after.accepted - before.accepted} calls`);
  assert.equal(after.rejected, before.rejected, 'no call without the key');
  assert.equal(after.lastHost, `127.0.0.1:${gate.port}`, 'Host is the endpoint authority');
  assert.equal(after.lastHeaders['dapr-caller-app-id'], 'agent');
});

h.test('dapr-app-id header form reaches the HTTPEndpoint too', { skip: needsSidecar }, async () => {
  const { client } = await h.mcpClient(`${sc.url}/mcp`, { headers: { 'dapr-app-id': 'remote-mcp' } });
  await echo(client, 'header form');
  await client.close();
});

h.test("the endpoint's header replaces a client's header of the same name", { skip: needsSidecar }, async () => {
  const { client } = await h.mcpClient(`${sc.url}/v1.0/invoke/remote-mcp/method/mcp`, { headers: { 'X-API-KEY': 'forged' } });
  await echo(client, 'override');
  await client.close();
});

h.test('an endpoint without the key gets the remote 401 unchanged; out-of-scope endpoints are not loaded', { skip: needsSidecar }, async () => {
  const r = await httpRequest(`${sc.url}/v1.0/invoke/remote-mcp-nokey/method/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
  });
  assert.equal(r.status, 401);
  assert.deepEqual(r.json, { error: 'missing or wrong key' });
  const m = (await httpRequest(`${sc.url}/v1.0/metadata`)).json;
  assert.deepEqual(m.httpEndpoints.map((e) => e.name).sort(), [
    'remote-mcp',
    'remote-mcp-mtls',
    'remote-mcp-mtls-nocert',
    'remote-mcp-nokey',
    'remote-mcp-tls',
    'remote-mcp-tls-wrong-name',
  ]);
  assert.deepEqual(m.components.map((c) => `${c.name} ${c.type} ${c.version}`), ['localsecrets secretstores.local.file v1', 'pems secretstores.local.file v1']);
  // not-for-us is scoped to another app: the name means an app id here, which does not exist.
  const nf = await httpRequest(`${sc.url}/v1.0/invoke/not-for-us/method/mcp`, { method: 'POST', body: '{}' });
  assert.equal(nf.status, 500);
  assert.match(nf.json.message, /failed to resolve address for 'not-for-us'/);
});

h.test('full-URL target (percent-encoded) with the key sent by the client', { skip: needsSidecar }, async () => {
  const target = encodeURIComponent(`http://127.0.0.1:${gate.port}`);
  const { client } = await h.mcpClient(`${sc.url}/v1.0/invoke/${target}/method/mcp`, { headers: { 'x-api-key': SECRET } });
  await echo(client, 'full url');
  await client.close();
  const r = await httpRequest(`${sc.url}/v1.0/invoke/${target}/method/gate/stats`);
  assert.equal(r.status, 200);
  assert.equal(r.json.lastPath, '/mcp');
});

h.test('HTTPS endpoint verified against its clientTLS rootCA, key from envRef', { skip: needsSidecar }, async () => {
  const before = await stats(gateTls);
  const { client } = await h.mcpClient(`${sc.url}/v1.0/invoke/remote-mcp-tls/method/mcp`);
  await echo(client, 'over tls');
  await client.close();
  const after = await stats(gateTls);
  assert.ok(after.accepted > before.accepted);
  assert.equal(after.lastHost, `localhost:${gateTls.port}`);
});

h.test('clientTLS certificate and privateKey (from a secret store) authenticate the sidecar to the server', { skip: needsSidecar }, async () => {
  const { client } = await h.mcpClient(`${sc.url}/v1.0/invoke/remote-mcp-mtls/method/mcp`);
  await echo(client, 'mutual tls');
  await client.close();
  const r = await httpRequest(`${sc.url}/v1.0/invoke/remote-mcp-mtls/method/gate/stats`);
  assert.equal(r.json.lastClientCN, 'agent-client');
  const refused = await httpRequest(`${sc.url}/v1.0/invoke/remote-mcp-mtls-nocert/method/mcp`, { method: 'POST', body: '{}' });
  assert.equal(refused.status, 500);
  assert.equal(refused.json.errorCode, 'ERR_DIRECT_INVOKE');
});

h.test('HTTPS refuses a certificate for another name, and one the system CAs do not trust', { skip: needsSidecar }, async () => {
  const before = await stats(gateTls);
  const wrong = await httpRequest(`${sc.url}/v1.0/invoke/remote-mcp-tls-wrong-name/method/mcp`, { method: 'POST', body: '{}' });
  assert.equal(wrong.status, 500);
  assert.equal(wrong.json.errorCode, 'ERR_DIRECT_INVOKE');
  assert.match(wrong.json.message, /^failed to invoke, id: remote-mcp-tls-wrong-name, err: .*(hostname|IP address) mismatch/);
  const target = encodeURIComponent(`https://localhost:${gateTls.port}`);
  const untrusted = await httpRequest(`${sc.url}/v1.0/invoke/${target}/method/mcp`, { method: 'POST', body: '{}', headers: { 'x-api-key': SECRET } });
  assert.equal(untrusted.status, 500);
  assert.match(untrusted.json.message, /certificate/);
  const after = await stats(gateTls);
  assert.equal(after.accepted + after.rejected, before.accepted + before.rejected, 'no request reached the server');
});

h.test('full-URL HTTPS verified against the system CA store (here: SSL_CERT_FILE), with the host name checked', { skip: needsSidecar }, async () => {
  // OpenSSL's default verify paths honour SSL_CERT_FILE: this sidecar's "system" store is the test CA.
  const sys = await h.startSidecar({
    appId: 'system-ca-agent',
    home: dir,
    env: { SSL_CERT_FILE: path.join(dir, 'ca.pem') },
    extraArgs: ['--enable-mtls=false'],
  });
  const ok = encodeURIComponent(`https://localhost:${gateTls.port}`);
  const { client } = await h.mcpClient(`${sys.url}/v1.0/invoke/${ok}/method/mcp`, { headers: { 'x-api-key': SECRET } });
  await echo(client, 'system store');
  await client.close();
  const byIp = encodeURIComponent(`https://127.0.0.1:${gateTls.port}`);
  const r = await httpRequest(`${sys.url}/v1.0/invoke/${byIp}/method/mcp`, { method: 'POST', body: '{}', headers: { 'x-api-key': SECRET } });
  assert.equal(r.status, 500);
  assert.match(r.json.message, /IP address mismatch/);
});

h.test('secrets API: get, nested key, scopes, bulk, errors', { skip: needsSidecar }, async () => {
  const base = `${sc.url}/v1.0/secrets`;
  let r = await httpRequest(`${base}/localsecrets/everything-key`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { 'everything-key': SECRET });
  r = await httpRequest(`${base}/localsecrets/nested:a`);
  assert.deepEqual(r.json, { 'nested:a': '1' });
  r = await httpRequest(`${base}/localsecrets/hidden`);
  assert.equal(r.status, 403);
  assert.equal(r.json.errorCode, 'ERR_PERMISSION_DENIED');
  r = await httpRequest(`${base}/localsecrets/bulk`);
  assert.deepEqual(r.json, {
    'everything-key': { 'everything-key': SECRET },
    'nested:a': { 'nested:a': '1' },
    'idp-secret': { 'idp-secret': 'agent-secret' },
  });
  r = await httpRequest(`${base}/nope/x`);
  assert.equal(r.status, 401);
  assert.equal(r.json.errorCode, 'ERR_SECRET_STORE_NOT_FOUND');
  r = await httpRequest(`${base}/localsecrets/missing`);
  assert.equal(r.status, 500);
  assert.deepEqual(r.json, { errorCode: 'ERR_SECRET_GET', message: 'failed getting secret with key missing from secret store localsecrets: secret missing not found' });
});

h.test('a missing secret stops the sidecar at start with file and line', { skip: needsSidecar }, async () => {
  const bad = path.join(dir, 'bad-resources');
  fs.mkdirSync(bad);
  fs.writeFileSync(
    path.join(bad, 'ep.yaml'),
    `apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: st\nspec:\n  type: secretstores.local.file\n  metadata:\n  - name: secretsFile\n    value: ${path.join(dir, 'secrets.json')}\n---\n` +
      'apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata:\n  name: e\nspec:\n  baseUrl: http://127.0.0.1:9\n  headers:\n  - name: k\n    secretKeyRef: {name: no-such-secret}\nauth:\n  secretStore: st\n',
  );
  const port = await freePort();
  const p = h.spawn('sidecar:bad', OUTRIGGER_BIN, ['sidecar', '--app-id', 'bad', '--dapr-http-port', String(port), '--metrics-port', String(await freePort()),
    '--enable-mtls=false', '--resources-path', bad], { env: { OUTRIGGER_HOME: dir } });
  const { code } = await p.waitExit(10000);
  assert.equal(code, 1);
  assert.match(p.output(), /ep\.yaml:19: spec\.headers\.0\.secretKeyRef: store st: secret no-such-secret not found/);
});

h.test('the key never shows up in the sidecar log (debug level) nor in metadata', { skip: needsSidecar }, async () => {
  const m = await httpRequest(`${sc.url}/v1.0/metadata`);
  assert.ok(!m.text.includes(SECRET));
  const key = fs.readFileSync(path.join(dir, 'client.key'), 'utf8').split('\n')[1];
  assert.ok(!sc.proc.output().includes(key), 'client private key in the sidecar log');
  await waitFor('debug lines in the log', () => /level=debug/.test(sc.proc.output()));
  assert.match(sc.proc.output(), /external call remote-mcp/);
  assert.ok(!sc.proc.output().includes(SECRET), 'secret found in the sidecar log');
});

h.test('oauth2clientcredentials on httpPipeline or appHttpPipeline puts a provider token on HTTPEndpoint calls; bearer on httpPipeline guards the secrets API', { skip: needsSidecar }, async () => {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const keysFile = path.join(dir, 'idp-keys.json');
  fs.writeFileSync(keysFile, JSON.stringify({ keys: [{ ...(await exportJWK(privateKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] }));
  const idp = await h.startNodeApp('idp', path.join(APPS_DIR, 'oidc-idp.mjs'), { env: { IDP_KEYS: keysFile, IDP_TOKEN_TTL: '300' } });
  const raw = await h.startNodeApp('remote-raw', RAW_APP);
  const res = path.join(dir, 'agent-resources');
  fs.mkdirSync(res);
  fs.writeFileSync(
    path.join(res, 'all.yaml'),
    `apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: localsecrets\nspec:\n  type: secretstores.local.file\n  metadata:\n  - name: secretsFile\n    value: ${path.join(dir, 'secrets.json')}\n---\n` +
      `apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: idp-token\nspec:\n  type: middleware.http.oauth2clientcredentials\n  version: v1\n  metadata:\n` +
      `  - {name: clientID, value: agent}\n  - name: clientSecret\n    secretKeyRef: {name: idp-secret}\n  - {name: scopes, value: mcp}\n` +
      `  - {name: tokenURL, value: "http://127.0.0.1:${idp.port}/token"}\n  - {name: headerName, value: Authorization}\nauth:\n  secretStore: localsecrets\n---\n` +
      `apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata:\n  name: remote-echo\nspec:\n  baseUrl: http://127.0.0.1:${raw.port}\n`,
  );
  fs.writeFileSync(
    path.join(dir, 'agent-config.yaml'),
    'apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: agent\nspec:\n  mtls:\n    enabled: false\n' +
      '  httpPipeline:\n    handlers:\n    - name: idp-token\n      type: middleware.http.oauth2clientcredentials\n',
  );
  const agent = await h.startSidecar({
    appId: 'token-agent',
    home: dir,
    logLevel: 'debug',
    extraArgs: ['--resources-path', res, '--config', path.join(dir, 'agent-config.yaml')],
  });
  for (let i = 0; i < 3; i++) {
    const r = await httpRequest(`${agent.url}/v1.0/invoke/remote-echo/method/echo`, { method: 'POST', body: '{}' });
    assert.equal(r.status, 200, r.text);
    assert.match(r.json.headers.authorization ?? '', /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    assert.equal(r.json.headers['dapr-caller-app-id'], 'token-agent');
  }
  assert.equal((idp.output().match(/\[idp\] token request/g) ?? []).length, 1, 'one token for three calls');
  assert.ok(!agent.proc.output().includes('agent-secret'), 'client secret in the sidecar log');

  // The same middleware on appHttpPipeline: Dapr runs that pipeline on HTTPEndpoint calls too.
  fs.writeFileSync(
    path.join(dir, 'agent-config-app.yaml'),
    'apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: agent\nspec:\n  mtls:\n    enabled: false\n' +
      '  appHttpPipeline:\n    handlers:\n    - name: idp-token\n      type: middleware.http.oauth2clientcredentials\n',
  );
  const agent2 = await h.startSidecar({
    appId: 'token-agent-2',
    home: dir,
    extraArgs: ['--resources-path', res, '--config', path.join(dir, 'agent-config-app.yaml')],
  });
  const r = await httpRequest(`${agent2.url}/v1.0/invoke/remote-echo/method/echo`, {
    method: 'POST',
    body: '{}',
    headers: { authorization: 'Bearer forged-by-the-client' },
  });
  assert.equal(r.status, 200, r.text);
  assert.match(r.json.headers.authorization ?? '', /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
  assert.equal((r.json.rawHeaders ?? []).filter((x) => /^authorization$/i.test(x)).length, 1, 'one Authorization header');

  // httpPipeline wraps every Dapr API route (spec §4.1): bearer there guards the secrets API too.
  const issuer = `http://127.0.0.1:${idp.port}`;
  const guarded = path.join(dir, 'guarded-resources');
  fs.mkdirSync(guarded);
  fs.writeFileSync(
    path.join(guarded, 'all.yaml'),
    `apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: localsecrets\nspec:\n  type: secretstores.local.file\n  metadata:\n  - name: secretsFile\n    value: ${path.join(dir, 'secrets.json')}\n---\n` +
      `apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: api-auth\nspec:\n  type: middleware.http.bearer\n  version: v1\n  metadata:\n` +
      `  - {name: issuer, value: "${issuer}"}\n  - {name: audience, value: mcp-server}\n`,
  );
  fs.writeFileSync(
    path.join(dir, 'guarded-config.yaml'),
    'apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: guarded\nspec:\n  mtls:\n    enabled: false\n' +
      '  httpPipeline:\n    handlers:\n    - name: api-auth\n      type: middleware.http.bearer\n',
  );
  const g = await h.startSidecar({
    appId: 'guarded-agent',
    home: dir,
    extraArgs: ['--resources-path', guarded, '--config', path.join(dir, 'guarded-config.yaml')],
  });
  const denied = await httpRequest(`${g.url}/v1.0/secrets/localsecrets/everything-key`);
  assert.equal(denied.status, 401);
  assert.ok(!denied.text.includes(SECRET));
  const tok = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('agent:agent-secret').toString('base64')}` },
    body: 'grant_type=client_credentials&scope=mcp',
  }).then((x) => x.json());
  const allowed = await httpRequest(`${g.url}/v1.0/secrets/localsecrets/everything-key`, { headers: { authorization: `Bearer ${tok.access_token}` } });
  assert.equal(allowed.status, 200, allowed.text);
  assert.deepEqual(allowed.json, { 'everything-key': SECRET });
});
