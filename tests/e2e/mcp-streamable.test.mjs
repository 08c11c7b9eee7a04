// Streamable HTTP (stateful, 2025-xx era) through two sidecars:
//   SDK client -> sidecar A (my-agent, no app) -> sidecar B (mcp-server) -> apps/mcp-server.mjs
// Both addressing forms: /v1.0/invoke/mcp-server/method/mcp and /mcp + dapr-app-id header.
import { before } from 'node:test';
import assert from 'node:assert/strict';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { Harness, MCP_SERVER_APP, DIRECT, needsSidecar, sleep, HOOK_TIMEOUT } from './lib/harness.mjs';
import { rawRequest, jsonRpcMessages, mcpPostHeaders } from './lib/rawhttp.mjs';
import { firstDiff } from './apps/big-text.mjs';

const h = new Harness();
let topo;

before(async () => {
  topo = await h.topology({ callerId: 'my-agent', apps: [{ appId: 'mcp-server', script: MCP_SERVER_APP }] });
}, HOOK_TIMEOUT);

const form = (kind) =>
  kind === 'invoke' ? { url: topo.invokeUrl('mcp-server', 'mcp'), headers: {} } : topo.headerForm('mcp-server', 'mcp');

async function whoami(client) {
  const r = await client.callTool({ name: 'whoami', arguments: {} });
  return JSON.parse(r.content[0].text);
}

/** Values of every header line named `name` (any case) in a rawHeaders array. */
function rawValues(rawHeaders, name) {
  const out = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i].toLowerCase() === name) out.push(rawHeaders[i + 1]);
  return out;
}

for (const kind of ['invoke', 'header']) {
  h.test(`${kind} form: initialize, tools/list, tools/call echo`, async () => {
    const { url, headers } = form(kind);
    const { client, transport } = await h.mcpClient(url, { headers });
    assert.equal(client.getServerVersion()?.name, 'outrigger-e2e-mcp-server');
    assert.match(transport.sessionId ?? '', /^[0-9a-f-]{36}$/, 'mcp-session-id reached the client');
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ['big', 'echo', 'notify', 'slow_progress', 'whoami']);
    const msg = `hi via ${kind} form ✓`;
    const r = await client.callTool({ name: 'echo', arguments: { message: msg } });
    assert.deepEqual(r.content, [{ type: 'text', text: `Echo: ${msg}` }]);
    const w = await whoami(client);
    assert.equal(w.headers['mcp-session-id'], transport.sessionId, 'session header forwarded');
    assert.equal(w.headers['mcp-protocol-version'], '2025-11-25', 'protocol version header forwarded');
    if (!DIRECT) assert.equal(w.headers['dapr-app-id'], undefined, 'dapr-app-id must not reach the app');
    await client.close();
  });
}

h.test('progress notifications stream while the tool runs (no buffering)', async () => {
  const { url, headers } = form('invoke');
  const { client } = await h.mcpClient(url, { headers });
  const got = [];
  const t0 = Date.now();
  const result = await client.callTool({ name: 'slow_progress', arguments: { count: 5, intervalMs: 200 } }, undefined, {
    timeout: 30000,
    onprogress: (p) => got.push({ at: Date.now(), progress: p.progress, server: JSON.parse(p.message).serverTime }),
  });
  const resultAt = Date.now();
  const resultServer = JSON.parse(result.content[0].text).serverTime;
  assert.deepEqual(got.map((g) => g.progress), [1, 2, 3, 4, 5]);
  const lags = got.map((g) => g.at - g.server);
  assert.ok(resultAt - got[0].at >= 400, `first progress only ${resultAt - got[0].at} ms before the result (lags ${lags})`);
  // Same machine, same clock: each notification must arrive soon after the server sent it,
  // long before the next one (200 ms later) is sent.
  for (const [i, lag] of lags.entries()) assert.ok(lag < 180, `progress ${i + 1} arrived ${lag} ms after it was sent (lags ${lags})`);
  assert.ok(resultAt - resultServer < 500, `result arrived ${resultAt - resultServer} ms after it was sent`);
  assert.ok(resultAt - t0 >= 1000, 'tool ran for 5 x 200 ms');
  await client.close();
});

h.test('8 MiB tool result arrives intact', { timeout: 120000 }, async () => {
  const { url, headers } = form('invoke');
  const { client } = await h.mcpClient(url, { headers });
  const n = 8 * 1024 * 1024;
  const r = await client.callTool({ name: 'big', arguments: { bytes: n } }, undefined, { timeout: 60000 });
  assert.equal(r.content.length, 1);
  const text = r.content[0].text;
  assert.equal(text.length, n, 'length');
  assert.equal(firstDiff(text, n), -1, 'content differs from bigText(n)');
  await client.close();
});

h.test('standalone GET SSE stream delivers a server notification', async () => {
  const { url, headers } = form('header');
  const { client } = await h.mcpClient(url, { headers });
  const token = `note-${Math.random().toString(36).slice(2)}`;
  const arrived = new Promise((resolve) => {
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
      if (n.params.data === token) resolve(n);
    });
  });
  // The client opens the GET stream asynchronously after notifications/initialized; a
  // notification sent before it is open is dropped by the SDK, so retry until one arrives.
  let done = false;
  arrived.then(() => (done = true));
  const deadline = Date.now() + 10000;
  while (!done && Date.now() < deadline) {
    await client.callTool({ name: 'notify', arguments: { text: token } });
    await Promise.race([arrived, sleep(300)]);
  }
  assert.ok(done, 'no notifications/message arrived on the GET stream within 10 s');
  const n = await arrived;
  assert.equal(n.params.logger, 'notify');
  await client.close();
});

h.test('DELETE ends the session; the session id is then rejected by the app', async () => {
  const { url, headers } = form('invoke');
  const { client, transport } = await h.mcpClient(url, { headers });
  const sid = transport.sessionId;
  assert.ok(sid);
  const list = (id) =>
    rawRequest(url, {
      method: 'POST',
      headers: [...mcpPostHeaders({ sessionId: sid }), ...Object.entries(headers)],
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/list' }),
    });
  const ok = await list(101);
  assert.equal(ok.status, 200, `raw tools/list before DELETE: ${ok.status} ${ok.body}`);
  assert.ok(jsonRpcMessages(ok).some((m) => m.id === 101 && m.result?.tools?.length === 5));
  await transport.terminateSession();
  assert.equal(transport.sessionId, undefined);
  const gone = await list(102);
  assert.ok([404, 400].includes(gone.status), `after DELETE expected 404/400, got ${gone.status} ${gone.body}`);
  assert.equal(JSON.parse(gone.body.toString()).error?.code, -32001);
  await client.close();
});

h.test('50 concurrent sessions each initialize and call a tool', { timeout: 120000 }, async () => {
  const runOne = async (i) => {
    const { url, headers } = form(i % 2 ? 'invoke' : 'header');
    const { client, transport } = await h.mcpClient(url, { headers, name: `c${i}` });
    const r = await client.callTool({ name: 'echo', arguments: { message: `m${i}` } });
    assert.equal(r.content[0].text, `Echo: m${i}`);
    const sid = transport.sessionId;
    await client.close();
    return sid;
  };
  const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => runOne(i)));
  const failed = results.filter((r) => r.status === 'rejected');
  assert.equal(failed.length, 0, `failures: ${failed.slice(0, 3).map((f) => f.reason?.message)}`);
  assert.equal(new Set(results.map((r) => r.value)).size, 50, 'distinct session ids');
});

h.test('client-supplied dapr-caller-* headers never reach the app', { skip: needsSidecar }, async () => {
  // fetch lower-cases and merges header names, so the SDK client carries the lower-case spoof and
  // a raw node:http request adds the canonical-case and duplicate variants on the wire.
  const spoof = { 'dapr-caller-app-id': 'admin', 'dapr-caller-namespace': 'evil', 'dapr-callee-app-id': 'other' };
  for (const kind of ['invoke', 'header']) {
    const { url, headers } = form(kind);
    const { client, transport } = await h.mcpClient(url, { headers: { ...headers, ...spoof } });
    const check = (w, how) => {
      for (const [name, want] of [
        ['dapr-caller-app-id', 'my-agent'],
        ['dapr-callee-app-id', 'mcp-server'],
        ['dapr-caller-namespace', 'default'],
      ]) {
        assert.deepEqual(rawValues(w.rawHeaders, name), [want], `${kind}/${how}: raw ${name} lines`);
        assert.equal(w.headers[name], want, `${kind}/${how}: ${name}`);
      }
    };
    check(await whoami(client), 'sdk');

    const res = await rawRequest(url, {
      method: 'POST',
      headers: [
        ...mcpPostHeaders({ sessionId: transport.sessionId }),
        ...Object.entries(headers),
        ['Dapr-Caller-App-Id', 'admin'],
        ['dapr-caller-app-id', 'admin2'],
        ['Dapr-Caller-Namespace', 'evil'],
        ['DAPR-CALLEE-APP-ID', 'other'],
      ],
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'whoami', arguments: {} } }),
    });
    assert.equal(res.status, 200, `raw whoami: ${res.status} ${res.body}`);
    const msg = jsonRpcMessages(res).find((m) => m.id === 7);
    check(JSON.parse(msg.result.content[0].text), 'raw canonical-case');
    await client.close();
  }
});

h.test('app sees a Host it accepts and the MCP request headers unchanged', async () => {
  const { url, headers } = form('invoke');
  const { client } = await h.mcpClient(url, { headers: { ...headers, 'x-custom-trace': 'abc 123', authorization: 'Bearer tok' } });
  const w = await whoami(client);
  assert.equal(w.headers['x-custom-trace'], 'abc 123');
  assert.equal(w.headers.authorization, 'Bearer tok');
  assert.equal(w.headers['content-type'], 'application/json');
  assert.equal(w.headers.accept, 'application/json, text/event-stream');
  assert.match(w.headers.host, /^(127\.0\.0\.1|localhost)(:\d+)?$/);
  if (!DIRECT) assert.equal(w.url, '/mcp', 'app request path');
  await client.close();
});
