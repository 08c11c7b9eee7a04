// Configuration spec.accessControl enforced by the callee sidecar (issue 4), end to end with real
// sidecars (mTLS on, so the caller is the SPIFFE ID in its certificate) and the official MCP SDK:
//   1. a deny-by-default MCP server admits analyst-agent and refuses intruder-agent (and
//      analyst-agent from another namespace) with Dapr's exact 403 body; the server process never
//      sees a refused request;
//   2. an operations rule allowing only POST /mcp refuses the GET SSE stream (and DELETE);
//   3. path tricks (encoded dots and slashes, //, ./, case, trailing dot, #, ?, NUL, encoded
//      letters, double encoding) never get a path past an operation rule, in an allow-list and
//      in a deny-list policy;
//   4. hot reload: flipping defaultAction while a client loops changes the decision within 2 s
//      with no error but the intended 403s and no in-flight request dropped; a broken file
//      (invalid YAML, a policy without namespace) leaves the previous policy in force and is
//      reported by one error line naming the file and line.
// Every app is started with E2E_LOG_REQUESTS=1, so its captured output lists what reached it.
import { before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Harness, MCP_SERVER_APP, RAW_APP, OUTRIGGER_BIN, DIRECT, HOOK_TIMEOUT, httpRequest, sleep, waitFor, appRequests } from './lib/harness.mjs';
import { rawRequest, mcpPostHeaders, parseSse } from './lib/rawhttp.mjs';

const h = new Harness();
const skip = DIRECT
  ? 'E2E_DIRECT=1: needs real sidecars'
  : /fake-outrigger\.mjs$/.test(OUTRIGGER_BIN)
    ? 'the fake sidecar has no accessControl'
    : false;

let home;
let confDir;
const callers = {}; // appId (or appId.ns) -> sidecar

/** Writes a file the way editors and Kubernetes do: a temporary file renamed over it. */
function writeAtomic(file, text) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

/** A Configuration with the given spec.accessControl body (YAML lines, indented 4). */
function configYaml(name, accessControl) {
  return `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: ${name}
spec:
  accessControl:
${accessControl.trim().split('\n').map((l) => `    ${l}`).join('\n')}
`;
}

/** Starts an app (logging its requests) and its sidecar with --config holding `yaml`. */
async function guardedServer(appId, script, yaml) {
  const file = path.join(confDir, `${appId}.yaml`);
  writeAtomic(file, yaml);
  const app = await h.startNodeApp(`${appId}-app`, script, { env: { E2E_LOG_REQUESTS: '1' } });
  const sidecar = await h.startSidecar({ appId, appPort: app.port, home, extraArgs: ['--config', file] });
  return { app, sidecar, file };
}

before(async () => {
  if (skip) return;
  home = h.tmpHome();
  confDir = path.join(h.tmpHome('outrigger-acl-conf-'), 'conf');
  fs.mkdirSync(confDir);
  callers.analyst = await h.startSidecar({ appId: 'analyst-agent', home });
  callers.intruder = await h.startSidecar({ appId: 'intruder-agent', home });
  callers.analystOther = await h.startSidecar({ appId: 'analyst-agent', namespace: 'other', home });
}, HOOK_TIMEOUT);

const denyBody = (target, callerId, op, verb) =>
  JSON.stringify({
    errorCode: 'ERR_DIRECT_INVOKE',
    message: `failed to invoke, id: ${target}, err: rpc error: code = PermissionDenied desc = access control policy has denied access to id: ${callerId} operation: ${op} verb: ${verb}`,
  });

const initializeBody = (id = 1) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });

// ---------------------------------------------------------------------------------------------
// 1.

h.test('deny-by-default MCP server admits analyst-agent and refuses intruder-agent with 403', { skip }, async () => {
  const server = await guardedServer(
    'mcp-server',
    MCP_SERVER_APP,
    configYaml(
      'mcp-server-acl',
      `defaultAction: deny
trustDomain: public
policies:
  - appId: analyst-agent
    namespace: default
    trustDomain: public
    defaultAction: allow`,
    ),
  );

  // The analyst: the official client initializes, lists and calls tools.
  const { client } = await h.mcpClient(`${callers.analyst.url}/v1.0/invoke/mcp-server/method/mcp`, { name: 'analyst' });
  const r = await client.callTool({ name: 'echo', arguments: { message: 'allowed' } });
  assert.deepEqual(r.content, [{ type: 'text', text: 'Echo: allowed' }]);
  const who = JSON.parse((await client.callTool({ name: 'whoami', arguments: {} })).content[0].text);
  assert.equal(who.headers['dapr-caller-app-id'], 'analyst-agent');
  assert.ok(appRequests(server.app).some((q) => q.caller === 'analyst-agent'), 'the request log works (positive control)');

  // The intruder: the official client cannot even initialize...
  await assert.rejects(
    h.mcpClient(`${callers.intruder.url}/v1.0/invoke/mcp-server/method/mcp`, { name: 'intruder', connectTimeoutMs: 10000 }),
    (err) => (err instanceof StreamableHTTPError && err.code === 403) || /403/.test(String(err?.message)),
  );
  // ...and a raw initialize, in both addressing forms, gets Dapr's exact 403 body.
  const intruderId = 'spiffe://public/ns/default/intruder-agent';
  for (const [url, extra] of [
    [`${callers.intruder.url}/v1.0/invoke/mcp-server/method/mcp`, []],
    [`${callers.intruder.url}/mcp`, [['dapr-app-id', 'mcp-server']]],
  ]) {
    const res = await rawRequest(url, { method: 'POST', headers: [...mcpPostHeaders({}), ...extra, ['dapr-caller-app-id', 'analyst-agent']], body: initializeBody() });
    assert.equal(res.status, 403, `${url}: ${res.status} ${res.body}`);
    assert.equal(res.body.toString(), denyBody('mcp-server', intruderId, 'mcp', 'POST'), url);
    assert.match(res.headers['content-type'] ?? '', /^application\/json/);
  }
  const get = await rawRequest(`${callers.intruder.url}/v1.0/invoke/mcp-server/method/mcp`, { headers: { accept: 'text/event-stream' } });
  assert.equal(get.status, 403);
  assert.equal(get.body.toString(), denyBody('mcp-server', intruderId, 'mcp', 'GET'));

  // The analyst's app id from another namespace is another identity: no policy, global deny.
  const other = await rawRequest(`${callers.analystOther.url}/v1.0/invoke/mcp-server.default/method/mcp`, {
    method: 'POST',
    headers: mcpPostHeaders({}),
    body: initializeBody(),
  });
  assert.equal(other.status, 403, `analyst-agent.other: ${other.status} ${other.body}`);
  assert.equal(other.body.toString(), denyBody('mcp-server', 'spiffe://public/ns/other/analyst-agent', 'mcp', 'POST'));

  // A marker call by the analyst after all of the above: once it is in the server's log, anything
  // the intruder had got through would be there too.
  await client.callTool({ name: 'echo', arguments: { message: 'marker' } });
  await waitFor('marker in the server log', () => appRequests(server.app).filter((q) => q.caller === 'analyst-agent').length >= 4, { timeoutMs: 5000 });
  const seen = appRequests(server.app);
  assert.deepEqual(seen.filter((q) => q.caller !== 'analyst-agent'), [], 'the MCP server saw a refused caller');
  await client.close();

  // The decisions are counted with Dapr's metric names on the server sidecar's metrics port: the
  // analyst's calls by its app policy, the intruder's (and the other namespace's) by the global
  // default.
  const metrics = await (await fetch(`http://127.0.0.1:${server.sidecar.metricsPort}/metrics`)).text();
  const value = (name, ns) => {
    const m = metrics.match(new RegExp(`^${name}\\{app_id="mcp-server",trustDomain="public",namespace="${ns}"\\} (\\d+)$`, 'm'));
    return m ? Number(m[1]) : 0;
  };
  assert.ok(value('dapr_runtime_acl_app_policy_action_allowed_total', 'default') >= 4, metrics);
  assert.ok(value('dapr_runtime_acl_global_policy_action_blocked_total', 'default') >= 3, metrics);
  assert.ok(value('dapr_runtime_acl_global_policy_action_blocked_total', 'other') >= 1, metrics);
  assert.equal(value('dapr_runtime_acl_app_policy_action_blocked_total', 'default'), 0, metrics);
  assert.match(metrics, /^dapr_runtime_mtls_init_total\{app_id="mcp-server"\} 1$/m);
});

// ---------------------------------------------------------------------------------------------
// 2.

h.test('an operations rule allowing only POST /mcp refuses the GET SSE stream', { skip }, async () => {
  const server = await guardedServer(
    'mcp-ops',
    MCP_SERVER_APP,
    configYaml(
      'mcp-ops-acl',
      `defaultAction: deny
trustDomain: public
policies:
  - appId: analyst-agent
    namespace: default
    trustDomain: public
    defaultAction: deny
    operations:
      - name: /mcp
        httpVerb: ['POST']
        action: allow`,
    ),
  );
  const url = `${callers.analyst.url}/v1.0/invoke/mcp-ops/method/mcp`;
  // POST works: the SDK initializes (its GET stream attempt fails on its own) and calls a tool.
  const { client, transport } = await h.mcpClient(url, { name: 'ops' });
  client.onerror = () => {}; // the refused GET stream is reported here
  const r = await client.callTool({ name: 'echo', arguments: { message: 'post ok' } });
  assert.equal(r.content[0].text, 'Echo: post ok');
  const sid = transport.sessionId;
  assert.ok(sid);

  const analystId = 'spiffe://public/ns/default/analyst-agent';
  const get = await rawRequest(url, { headers: { accept: 'text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' } });
  assert.equal(get.status, 403, `GET stream: ${get.status} ${get.body}`);
  assert.equal(get.body.toString(), denyBody('mcp-ops', analystId, 'mcp', 'GET'));
  const del = await rawRequest(url, { method: 'DELETE', headers: { 'mcp-session-id': sid } });
  assert.equal(del.status, 403);
  assert.equal(del.body.toString(), denyBody('mcp-ops', analystId, 'mcp', 'DELETE'));
  // The rule is for /mcp: POST elsewhere falls back to the policy's deny.
  const elsewhere = await rawRequest(`${callers.analyst.url}/v1.0/invoke/mcp-ops/method/other`, { method: 'POST', body: '{}' });
  assert.equal(elsewhere.status, 403);

  // Still a working session after the refusals: POST goes on.
  const again = await client.callTool({ name: 'echo', arguments: { message: 'still' } });
  assert.equal(again.content[0].text, 'Echo: still');
  const seen = appRequests(server.app);
  assert.ok(seen.filter((q) => q.method === 'POST').length >= 3, 'POSTs reached the server');
  assert.deepEqual(seen.filter((q) => q.method !== 'POST'), [], 'a refused GET/DELETE reached the server');
  await client.close().catch(() => {});
});

// ---------------------------------------------------------------------------------------------
// 3.

/** GET with the request target sent exactly as given (no URL normalisation by the client). */
function getVerbatim(port, target, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * The path an app could make of what it received, whatever its router does: percent-decoded
 * (once), cut at a NUL (C strings), lower-cased, backslashes as slashes, dot segments resolved,
 * repeated slashes collapsed, query and trailing slash dropped.
 */
function appView(received) {
  let p = received.split('?')[0];
  try {
    p = decodeURIComponent(p);
  } catch {
    /* leave undecodable input as is */
  }
  p = p.split('\0')[0].toLowerCase().replace(/\\/g, '/');
  p = path.posix.normalize(`/${p}`).replace(/\/{2,}/g, '/');
  return p.length > 1 ? p.replace(/\/$/, '') : p;
}

// Method part of /v1.0/invoke/<app>/method/<trick>.
const TRICKS = [
  '%2e%2e/admin',
  '%2E%2E/admin',
  '..%2fadmin',
  'mcp/../admin',
  'mcp/%2e%2e/admin',
  'mcp%2F..%2Fadmin',
  'mcp/..%2Fadmin',
  'mcp/./../admin',
  'mcp/x/../../admin',
  '//admin',
  './admin',
  './/./admin',
  'admin%2F',
  'admin%2Fsecrets',
  'admin/',
  'admin/secrets',
  'ADMIN',
  'Admin/Secrets',
  'admin.',
  'admin%23x',
  'admin#x',
  'admin?x',
  'admin%3Fx',
  'admin%00',
  'admin%00.png',
  'admin%0a',
  'admin%7f',
  '%61dmin',
  '%41DMIN',
  '%252e%252e/admin',
  'mcp/%252e%252e/admin',
  'admin%252F',
];

for (const [kind, policy, denies] of [
  [
    'allow-list (only /mcp)',
    `- appId: analyst-agent
  namespace: default
  trustDomain: public
  defaultAction: deny
  operations:
    - name: /mcp
      httpVerb: ['*']
      action: allow`,
    (p) => !(p === '/mcp' || p.startsWith('/mcp/')),
  ],
  [
    'deny-list (/admin denied)',
    `- appId: analyst-agent
  namespace: default
  trustDomain: public
  defaultAction: allow
  operations:
    - name: /admin
      httpVerb: ['*']
      action: deny`,
    (p) => p === '/admin' || p.startsWith('/admin/'),
  ],
]) {
  h.test(`path tricks never pass an operation rule: ${kind}`, { skip, timeout: 90000 }, async () => {
    const appId = kind.startsWith('allow') ? 'allowlist-app' : 'denylist-app';
    const server = await guardedServer(appId, RAW_APP, configYaml(`${appId}-acl`, `defaultAction: deny\ntrustDomain: public\npolicies:\n${policy}`));
    const base = `/v1.0/invoke/${appId}/method/`;
    // Controls: the rule lets the allowed path through and stops the plain denied one.
    const allowedPath = kind.startsWith('allow') ? 'mcp/x' : 'echo/x';
    const ctl = await getVerbatim(callers.analyst.httpPort, base + allowedPath);
    assert.ok([200, 404].includes(ctl.status), `control ${allowedPath}: ${ctl.status} ${ctl.body}`);
    assert.ok(appRequests(server.app).some((q) => q.url === `/${allowedPath}`), `control ${allowedPath} reached the app`);
    const plain = await getVerbatim(callers.analyst.httpPort, `${base}admin`);
    assert.equal(plain.status, 403, `plain admin: ${plain.status} ${plain.body}`);

    const outcomes = [];
    for (const trick of TRICKS) {
      const before = appRequests(server.app).length;
      let res;
      try {
        res = await getVerbatim(callers.analyst.httpPort, base + trick);
      } catch (err) {
        outcomes.push({ trick, status: 'error', error: err.message });
        continue;
      }
      await sleep(20);
      const got = appRequests(server.app).slice(before).map((q) => q.url);
      outcomes.push({ trick, status: res.status, appGot: got, body: res.status >= 400 && res.status !== 404 ? res.body : undefined });
    }
    // Wait for late log lines, then judge: nothing the rule denies ever reached the app, in any
    // reading the app could make of its path; a request that did not reach it was refused with
    // 403 (ACL) or 400 (invalid method), never an error.
    await sleep(200);
    const problems = [];
    for (const o of outcomes) {
      if (o.status === 'error') {
        problems.push(`${o.trick}: request failed: ${o.error}`);
        continue;
      }
      const leaked = o.appGot.filter((u) => denies(appView(u)));
      if (leaked.length) problems.push(`${o.trick}: app received ${leaked} (reads as ${leaked.map(appView)}), status ${o.status}`);
      if (o.appGot.length === 0 && ![400, 403].includes(o.status)) problems.push(`${o.trick}: not forwarded, yet status ${o.status} ${o.body ?? ''}`);
      if (o.status >= 500) problems.push(`${o.trick}: status ${o.status} ${o.body ?? ''}`);
    }
    const all = appRequests(server.app).map((q) => q.url);
    for (const u of all) if (denies(appView(u))) problems.push(`app log holds ${u} (reads as ${appView(u)})`);
    assert.deepEqual(problems, [], `outcomes:\n${outcomes.map((o) => JSON.stringify(o)).join('\n')}`);
    // The deny-list must refuse (not just fail to forward) every spelling that means /admin.
    if (!kind.startsWith('allow')) {
      for (const t of ['%2e%2e/admin', 'mcp/../admin', '//admin', './admin', 'admin%2F', 'ADMIN', 'admin?x', '%61dmin', 'admin/secrets']) {
        const o = outcomes.find((x) => x.trick === t);
        assert.equal(o.status, 403, `${t} should be denied by the /admin rule: ${JSON.stringify(o)}`);
      }
      for (const t of ['admin%23x', 'admin%00', 'admin%0a', 'admin%3Fx']) {
        const o = outcomes.find((x) => x.trick === t);
        assert.equal(o.status, 400, `${t} is an invalid method (spec §1.2): ${JSON.stringify(o)}`);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// 4.

/** Error lines the sidecar logged under scope config. */
const configErrors = (proc) => proc.output().split('\n').filter((l) => /level=error/.test(l) && /scope=config/.test(l));

h.test('hot reload: defaultAction flips within 2 s under load; a broken file keeps the old policy', { skip, timeout: 90000 }, async (t) => {
  const yaml = (action) => configYaml('reload-acl', `defaultAction: ${action}\ntrustDomain: public`);
  const server = await guardedServer('reload-app', RAW_APP, yaml('allow'));
  const sc = server.sidecar;
  const url = `${callers.analyst.url}/v1.0/invoke/reload-app/method/echo/loop`;

  // The client: one call every ~50 ms, each recorded with when it was sent and answered.
  const log = [];
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const sent = Date.now();
      try {
        const r = await httpRequest(url, { timeoutMs: 5000 });
        log.push({ sent, done: Date.now(), status: r.status, text: r.status === 200 ? '' : r.text });
      } catch (err) {
        log.push({ sent, done: Date.now(), status: 'error', text: err.message });
      }
      await sleep(50);
    }
  })();

  /** Writes `text` and returns {at, firstSent} for when the answer became `want`. */
  const flip = async (text, want) => {
    const at = Date.now();
    writeAtomic(server.file, text);
    const e = await waitFor(`answer ${want} after the write`, () => log.find((x) => x.sent >= at && x.status === want), { timeoutMs: 5000, intervalMs: 20 });
    return { at, firstSent: e.sent };
  };
  try {
    await waitFor('loop running', () => log.length >= 10, { timeoutMs: 5000 });

    // allow -> deny, with a 2 s SSE stream in flight across the change.
    const stream = httpRequest(`${callers.analyst.url}/v1.0/invoke/reload-app/method/sse-ticks?count=20&intervalMs=100`, { timeoutMs: 10000, headers: { accept: 'text/event-stream' } });
    await sleep(300);
    const d1 = await flip(yaml('deny'), 403);
    assert.ok(d1.firstSent - d1.at <= 2000, `deny took effect ${d1.firstSent - d1.at} ms after the write`);
    const s = await stream;
    assert.equal(s.status, 200, 'the in-flight stream was not cut');
    assert.equal(parseSse(s.text).filter((ev) => ev.event === 'tick').length, 20, 'the in-flight stream got every event');
    await sleep(500);
    const denied = log.find((e) => e.status === 403);
    assert.equal(denied.text, denyBody('reload-app', 'spiffe://public/ns/default/analyst-agent', 'echo/loop', 'GET'));

    // deny -> allow.
    const d2 = await flip(yaml('allow'), 200);
    assert.ok(d2.firstSent - d2.at <= 2000, `allow took effect ${d2.firstSent - d2.at} ms after the write`);
    await sleep(500);

    // Between the writes: 200s, then 403s from at most 2 s after the first write, then 200s.
    for (const e of log) {
      const expect = e.done < d1.at ? [200] : e.sent < d1.at + 2000 ? [200, 403] : e.done < d2.at ? [403] : e.sent < d2.at + 2000 ? [200, 403] : [200];
      assert.ok(expect.includes(e.status), `call sent at +${e.sent - d1.at} ms (relative to the deny write): ${e.status} ${e.text}`);
    }
    // Once the new answer came, it stayed (no worker kept the old policy).
    const afterDeny = log.filter((e) => e.sent >= d1.firstSent && e.done < d2.at).map((e) => e.status);
    assert.ok(afterDeny.length >= 5 && afterDeny.every((x) => x === 403), `after the first 403: ${afterDeny}`);

    // Broken files: deny is written first so that "unchanged" is visible as 403.
    const d3 = await flip(yaml('deny'), 403);
    await sleep(500);
    const errorsBefore = configErrors(sc.proc).length;
    const broken = [
      {
        what: 'invalid YAML',
        text: `${yaml('allow')}    policies: [\n      {appId: analyst-agent\n`,
        line: /:\d+/,
      },
      {
        what: 'a policy without namespace',
        text: configYaml('reload-acl', `defaultAction: allow\ntrustDomain: public\npolicies:\n  - appId: analyst-agent\n    trustDomain: public\n    defaultAction: allow`),
        line: /:10\b/,
        field: /namespace/,
      },
    ];
    for (const [i, b] of broken.entries()) {
      const at = Date.now();
      writeAtomic(server.file, b.text);
      // Long enough for a reload (and the poll fallback) to have happened.
      await sleep(3000);
      const since = log.filter((e) => e.sent >= at);
      assert.ok(since.length >= 20, `${b.what}: only ${since.length} calls in 3 s`);
      assert.ok(since.every((e) => e.status === 403), `${b.what}: the previous policy (deny) must stay: ${since.map((e) => e.status)}`);
      const errs = configErrors(sc.proc).slice(errorsBefore);
      assert.equal(errs.length, i + 1, `${b.what}: expected exactly one new error line, got:\n${errs.join('\n')}`);
      const line = errs[i];
      assert.ok(line.includes(server.file), `${b.what}: the error names the file: ${line}`);
      assert.match(line, new RegExp(`${server.file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+`), `${b.what}: the error names a line: ${line}`);
      assert.match(line, b.line, `${b.what}: line number`);
      if (b.field) assert.match(line, b.field, `${b.what}: the field`);
      assert.match(line, /keeping the previous configuration/);
    }
    // A good file after the broken ones is picked up again.
    const d4 = await flip(yaml('allow'), 200);
    assert.ok(d4.firstSent - d4.at <= 2000, `recovery took ${d4.firstSent - d4.at} ms`);
    t.diagnostic(`decision changed ${[d1, d2, d3, d4].map((d) => d.firstSent - d.at).join(', ')} ms after the writes`);
  } finally {
    stop = true;
    await loop;
  }
  // No request error of any other kind during the whole test.
  const bad = log.filter((e) => ![200, 403].includes(e.status));
  assert.deepEqual(bad, [], 'only 200 and the intended 403s');
  assert.ok(log.length >= 150, `only ${log.length} calls`);
});
