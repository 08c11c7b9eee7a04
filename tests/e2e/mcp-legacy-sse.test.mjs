// Legacy HTTP+SSE transport (2024-11-05) through two sidecars:
//   SSEClientTransport -> sidecar A (my-agent) -> sidecar B (mcp-server) -> apps/mcp-server.mjs --sse
//
// Why the header form (dapr-app-id) and not /v1.0/invoke/mcp-server/method/sse: the server's first
// SSE event is `endpoint` with the *relative* URL `/message?sessionId=...`, which the client
// resolves against the SSE URL. From http://A/v1.0/invoke/mcp-server/method/sse that gives
// http://A/message?sessionId=..., a path Dapr routes only with a dapr-app-id header. With the
// header form the GET is http://A/sse and the POSTs http://A/message, and SSEClientTransport puts
// requestInit.headers on both: its EventSource `fetch` override builds headers from
// _commonHeaders() (requestInit.headers + mcp-protocol-version) and its send() uses the same.
import { before } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, MCP_SERVER_APP, needsSidecar, HOOK_TIMEOUT } from './lib/harness.mjs';

const h = new Harness();
let topo;

before(async () => {
  topo = await h.topology({ callerId: 'my-agent', apps: [{ appId: 'mcp-server', script: MCP_SERVER_APP, args: ['--sse'] }] });
}, HOOK_TIMEOUT);

const connect = () => {
  const { url, headers } = topo.headerForm('mcp-server', 'sse');
  return h.mcpClient(url, { kind: 'sse', headers });
};

h.test('legacy SSE: initialize, tools/list, tools/call echo', async () => {
  const { client, transport } = await connect();
  assert.equal(client.getServerVersion()?.name, 'outrigger-e2e-mcp-server');
  assert.match(transport._endpoint?.pathname ?? '', /^\/message$/, 'endpoint event resolved to /message');
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), ['big', 'echo', 'notify', 'slow_progress', 'whoami']);
  const r = await client.callTool({ name: 'echo', arguments: { message: 'over legacy sse' } });
  assert.deepEqual(r.content, [{ type: 'text', text: 'Echo: over legacy sse' }]);
  await client.close();
});

h.test('legacy SSE: progress arrives on the long-lived GET stream as it is sent', async () => {
  const { client } = await connect();
  const got = [];
  const result = await client.callTool({ name: 'slow_progress', arguments: { count: 5, intervalMs: 200 } }, undefined, {
    timeout: 30000,
    onprogress: (p) => got.push({ at: Date.now(), server: JSON.parse(p.message).serverTime }),
  });
  const resultAt = Date.now();
  assert.equal(got.length, 5);
  assert.equal(JSON.parse(result.content[0].text).count, 5);
  const lags = got.map((g) => g.at - g.server);
  assert.ok(resultAt - got[0].at >= 400, `first progress only ${resultAt - got[0].at} ms before the result`);
  for (const [i, lag] of lags.entries()) assert.ok(lag < 180, `progress ${i + 1} arrived ${lag} ms late (lags ${lags})`);
  await client.close();
});

h.test('legacy SSE: the POST /message reaches the app with caller identity', { skip: needsSidecar }, async () => {
  const { client } = await connect();
  const r = await client.callTool({ name: 'whoami', arguments: {} });
  const w = JSON.parse(r.content[0].text);
  assert.match(w.url, /^\/message\?sessionId=[0-9a-f-]{36}$/);
  assert.equal(w.headers['dapr-caller-app-id'], 'my-agent');
  assert.equal(w.headers['dapr-callee-app-id'], 'mcp-server');
  assert.equal(w.headers['dapr-app-id'], undefined);
  await client.close();
});
