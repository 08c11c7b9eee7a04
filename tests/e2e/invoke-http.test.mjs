// Plain HTTP service invocation through two sidecars to apps/raw-app.mjs:
//   client -> sidecar A (my-agent) -> sidecar B (raw-app) -> raw-app
// Header/query/body pass-through (incl. 2026-07-28 MCP headers), SSE streaming, status codes,
// @dapr/dapr DaprClient, and the error paths (unknown app, no app id, dead app, app closing
// mid-response) after each of which sidecar A must still serve normal requests.
import { before } from 'node:test';
import assert from 'node:assert/strict';
import { DaprClient, HttpMethod, CommunicationProtocolEnum, LogLevel } from '@dapr/dapr';
import { Harness, RAW_APP, DIRECT, needsSidecar, httpRequest, HOOK_TIMEOUT } from './lib/harness.mjs';
import { parseSse } from './lib/rawhttp.mjs';

const h = new Harness();
let topo;

before(async () => {
  topo = await h.topology({
    callerId: 'my-agent',
    apps: [
      { appId: 'raw-app', script: RAW_APP },
      { appId: 'dead-app', script: RAW_APP },
    ],
  });
}, HOOK_TIMEOUT);

const echoJson = async (res) => {
  assert.equal(res.status, 200, `status ${res.status}: ${res.text}`);
  return res.json;
};

/** Sidecar A still answers a normal invocation. */
async function assertStillServing() {
  const r = await httpRequest(topo.invokeUrl('raw-app', 'echo/after'), { method: 'POST', body: 'still ok' });
  const e = await echoJson(r);
  assert.equal(e.body, 'still ok');
}

function assertInvokeError(r, status, messagePrefix) {
  assert.equal(r.status, status, `status (body ${r.text})`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  assert.ok(r.json, `body is not JSON: ${r.text}`);
  assert.deepEqual(Object.keys(r.json).sort(), ['errorCode', 'message']);
  assert.equal(r.json.errorCode, 'ERR_DIRECT_INVOKE');
  assert.ok(r.json.message.startsWith(messagePrefix), `message ${JSON.stringify(r.json.message)} lacks prefix ${JSON.stringify(messagePrefix)}`);
}

h.test('2026-07-28 sessionless POST: MCP-Protocol-Version, Mcp-Method, Mcp-Name pass through', async () => {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: {
      name: 'echo',
      arguments: { message: 'hi' },
      _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} },
    },
  });
  const mcpHeaders = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'MCP-Protocol-Version': '2026-07-28',
    'Mcp-Method': 'tools/call',
    'Mcp-Name': 'echo',
    'Mcp-Param-Region': '=?base64?ZXUtd2VzdA==?=',
  };
  for (const f of [{ url: topo.invokeUrl('raw-app', 'echo'), headers: {} }, topo.headerForm('raw-app', 'echo')]) {
    const e = await echoJson(await httpRequest(f.url, { method: 'POST', headers: { ...f.headers, ...mcpHeaders }, body }));
    assert.equal(e.method, 'POST');
    assert.equal(e.path, '/echo');
    assert.equal(e.headers['mcp-protocol-version'], '2026-07-28');
    assert.equal(e.headers['mcp-method'], 'tools/call');
    assert.equal(e.headers['mcp-name'], 'echo');
    assert.equal(e.headers['mcp-param-region'], '=?base64?ZXUtd2VzdA==?=');
    assert.equal(e.headers['mcp-session-id'], undefined);
    assert.equal(e.headers['content-type'], 'application/json');
    assert.equal(e.headers.accept, 'application/json, text/event-stream');
    assert.equal(e.body, body);
  }
});

h.test('method path and raw query string reach the app verbatim', async () => {
  const e = await echoJson(await httpRequest(topo.invokeUrl('raw-app', 'echo/a/b?x=1&y=%20z&x=2'), { method: 'PUT', body: 'p' }));
  assert.equal(e.method, 'PUT');
  assert.equal(e.path, '/echo/a/b');
  assert.equal(e.query, 'x=1&y=%20z&x=2');
  assert.equal(e.body, 'p');
  const { url, headers } = topo.headerForm('raw-app', 'echo/c?q=%2Fv');
  const e2 = await echoJson(await httpRequest(url, { method: 'DELETE', headers }));
  assert.equal(e2.method, 'DELETE');
  assert.equal(e2.path, '/echo/c');
  assert.equal(e2.query, 'q=%2Fv');
  if (!DIRECT) assert.equal(e2.headers['dapr-app-id'], undefined, 'dapr-app-id is removed before the app');
});

h.test('request bodies: 1 MiB with Content-Length and 256 KiB chunked arrive intact', async () => {
  const big = Buffer.alloc(1024 * 1024, 'q');
  const e = await echoJson(await httpRequest(topo.invokeUrl('raw-app', 'echo'), { method: 'POST', body: big, headers: { 'content-type': 'text/plain' } }));
  assert.equal(e.bodyLength, big.length);
  assert.equal(e.headers['content-length'], String(big.length));
  assert.equal(e.headers['content-type'], 'text/plain');
  const parts = Array.from({ length: 64 }, (_, i) => Buffer.alloc(4096, 97 + (i % 26)));
  const stream = new ReadableStream({
    start(c) {
      for (const p of parts) c.enqueue(p);
      c.close();
    },
  });
  const res = await fetch(topo.invokeUrl('raw-app', 'echo'), { method: 'POST', body: stream, duplex: 'half', signal: AbortSignal.timeout(10000) });
  assert.equal(res.status, 200);
  const e2 = await res.json();
  assert.equal(e2.bodyLength, 64 * 4096);
  assert.equal(e2.body, Buffer.concat(parts).toString());
});

h.test('app status codes, headers and bodies pass through unchanged', async () => {
  for (const status of [201, 404, 409, 500, 503]) {
    const r = await httpRequest(topo.invokeUrl('raw-app', `status/${status}`), { method: 'POST', body: 'x' });
    assert.equal(r.status, status);
    assert.deepEqual(r.json, { status, from: 'raw-app' });
    assert.equal(r.headers.get('x-raw-app'), 'status');
    assert.match(r.headers.get('content-type') ?? '', /^application\/json/);
  }
  const r = await httpRequest(topo.invokeUrl('raw-app', 'status/204'));
  assert.equal(r.status, 204);
  assert.equal(r.text, '');
  const nf = await httpRequest(topo.invokeUrl('raw-app', 'no/such/route'));
  assert.equal(nf.status, 404);
  assert.deepEqual(nf.json, { error: 'no route', path: '/no/such/route' });
});

h.test('SSE response streams event by event', async () => {
  const res = await fetch(topo.invokeUrl('raw-app', 'sse-ticks?count=8&intervalMs=150'), {
    headers: { accept: 'text/event-stream' },
    signal: AbortSignal.timeout(15000),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const decoder = new TextDecoder();
  let buf = '';
  const arrivals = [];
  for await (const chunk of res.body) {
    buf += decoder.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const [ev] = parseSse(buf.slice(0, i + 2));
      buf = buf.slice(i + 2);
      arrivals.push({ at: Date.now(), ev });
    }
  }
  assert.equal(arrivals.length, 8);
  assert.deepEqual(arrivals.map((a) => a.ev.id), ['1', '2', '3', '4', '5', '6', '7', '8']);
  assert.ok(arrivals.every((a) => a.ev.event === 'tick'));
  const lags = arrivals.map((a) => a.at - JSON.parse(a.ev.data).t);
  for (const [i, lag] of lags.entries()) assert.ok(lag < 140, `tick ${i + 1} arrived ${lag} ms after it was written (lags ${lags})`);
});

h.test('@dapr/dapr DaprClient invoker.invoke returns the echoed body', { skip: needsSidecar, timeout: 60000 }, async () => {
  const client = new DaprClient({
    daprHost: '127.0.0.1',
    daprPort: String(topo.caller.httpPort),
    communicationProtocol: CommunicationProtocolEnum.HTTP,
    logger: { level: LogLevel.Error },
  });
  h.onCleanup(() => client.stop());
  const r = await client.invoker.invoke('raw-app', 'echo', HttpMethod.POST, { a: 1 });
  assert.equal(r.method, 'POST');
  assert.equal(r.path, '/echo');
  assert.deepEqual(JSON.parse(r.body), { a: 1 });
  assert.match(r.headers['content-type'], /^application\/json/);
  assert.equal(r.headers['dapr-caller-app-id'], 'my-agent');
  const g = await client.invoker.invoke('raw-app', 'echo/x?k=v', HttpMethod.GET);
  assert.equal(g.method, 'GET');
  assert.equal(g.url, '/echo/x?k=v');
});

h.test('unknown app id -> 500 ERR_DIRECT_INVOKE', { skip: needsSidecar }, async () => {
  assertInvokeError(await httpRequest(`${topo.callerUrl}/v1.0/invoke/nope/method/echo`, { method: 'POST', body: '{}' }), 500, 'failed to invoke, id: nope, err: ');
  assertInvokeError(await httpRequest(`${topo.callerUrl}/echo`, { headers: { 'dapr-app-id': 'nope' } }), 500, 'failed to invoke, id: nope, err: ');
  await assertStillServing();
});

h.test('no app id -> 404 ERR_DIRECT_INVOKE with the exact Dapr message', { skip: needsSidecar }, async () => {
  for (const [method, path] of [
    ['GET', '/foo'],
    ['POST', '/mcp'],
  ]) {
    const r = await httpRequest(`${topo.callerUrl}${path}`, { method, body: method === 'POST' ? '{}' : undefined });
    assert.equal(r.status, 404, `${method} ${path}: ${r.text}`);
    assert.deepEqual(r.json, {
      errorCode: 'ERR_DIRECT_INVOKE',
      message: 'failed getting app id either from the URL path or the header dapr-app-id',
    });
  }
  await assertStillServing();
});

h.test('dead app -> 500 ERR_DIRECT_INVOKE', { skip: needsSidecar }, async () => {
  const dead = topo.app('dead-app');
  const before = await httpRequest(topo.invokeUrl('dead-app', 'echo'));
  assert.equal(before.status, 200, 'dead-app answers before it is killed');
  await dead.proc.kill();
  assertInvokeError(await httpRequest(topo.invokeUrl('dead-app', 'echo'), { method: 'POST', body: 'x' }), 500, 'failed to invoke, id: dead-app, err: ');
  await assertStillServing();
});

h.test('app closing the connection mid-response -> client sees an aborted body', async () => {
  const res = await fetch(topo.invokeUrl('raw-app', 'close-mid-stream'), { signal: AbortSignal.timeout(10000) });
  assert.equal(res.status, 200, 'headers were already sent by the app');
  await assert.rejects(res.arrayBuffer(), 'reading the truncated body must fail, not end cleanly');
  await assertStillServing();
});
