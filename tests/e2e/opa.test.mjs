// Per-tool authorization (issue 6): middleware.http.opa on the MCP server's appHttpPipeline, the
// policy from Dapr's MCP docs verbatim (v0 syntax), three agents and the official MCP client:
//   - analyst-agent lists tools and calls get_inventory, gets 403 on update_stock;
//   - ops-agent may call update_stock; an unknown caller is refused;
//   - a batch array cannot smuggle a forbidden call; Mcp-Method/Mcp-Name headers that disagree
//     with the body are refused with 400;
//   - a refused call never runs in the app.
import { before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Harness, APPS_DIR, DIRECT, OUTRIGGER_BIN, HOOK_TIMEOUT, httpRequest } from './lib/harness.mjs';

const h = new Harness();
const skip = DIRECT ? 'E2E_DIRECT=1: needs real sidecars' : /fake-outrigger\.mjs$/.test(OUTRIGGER_BIN) ? 'the fake sidecar has no middleware' : false;
const INVENTORY = path.join(APPS_DIR, 'inventory-server.mjs');

// Dapr's documented MCP access-control policy (spec/rego.md), as a user pastes it.
const SEED_POLICY = `package http

default allow = false

body := json.unmarshal(input.request.body)
caller := input.request.headers["dapr-caller-app-id"]

allow {
    body.method == "initialize"
}

allow {
    body.method == "tools/list"
}

allow {
    body.method == "tools/call"
    allowed_tools[caller][_] == body.params.name
}

allowed_tools := {
    "analyst-agent": ["get_inventory", "get_schema"],
    "ops-agent": ["get_inventory", "update_stock"],
}
`;

const indent = (text, n) => text.split('\n').map((l) => (l ? ' '.repeat(n) + l : l)).join('\n');

// The same rules written against input.mcp (v1 syntax), plus visible_tools for tools/list.
const VISIBLE_POLICY = `package http

import rego.v1

default allow := false

tools := {
    "analyst-agent": {"get_inventory", "get_schema"},
    "ops-agent": {"get_inventory", "update_stock"},
}

caller := input.request.headers["dapr-caller-app-id"]

allowed(m) if m.method in {"initialize", "notifications/initialized", "tools/list", "ping"}

allowed(m) if {
    m.method == "tools/call"
    m.name in tools[caller]
}

# One message, or a batch whose every message is allowed (a batch has no method of its own).
allow if allowed(input.mcp)

allow if {
    input.mcp.batch
    every m in input.mcp.messages { allowed(m) }
}

visible_tools := object.get(tools, caller, set())
`;

let app, server, agents = {};
const visApps = {};

before(async () => {
  if (skip) return;
  const home = h.tmpHome();
  const res = path.join(h.tmpHome('outrigger-opa-'), 'res');
  fs.mkdirSync(res);
  fs.writeFileSync(path.join(res, 'opa.yaml'), `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: tool-policy
spec:
  type: middleware.http.opa
  version: v1
  metadata:
  - name: readBody
    value: "true"
  - name: includedHeaders
    value: "dapr-caller-app-id"
  - name: rego
    value: |
${indent(SEED_POLICY, 6)}
`);
  fs.writeFileSync(path.join(res, 'config.yaml'), `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: inventory
spec:
  appHttpPipeline:
    handlers:
    - name: tool-policy
      type: middleware.http.opa
`);
  app = await h.startNodeApp('inventory-app', INVENTORY);
  server = await h.startSidecar({ appId: 'inventory', appPort: app.port, home, extraArgs: ['--resources-path', res, '--config', path.join(res, 'config.yaml')] });
  for (const id of ['analyst-agent', 'ops-agent', 'unknown-agent']) agents[id] = await h.startSidecar({ appId: id, home });
  // Two more servers under the visible_tools policy: JSON responses and SSE responses.
  const vres = path.join(h.tmpHome('outrigger-opa-vis-'), 'res');
  fs.mkdirSync(vres);
  fs.writeFileSync(path.join(vres, 'opa.yaml'), `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: tool-policy
spec:
  type: middleware.http.opa
  version: v1
  metadata:
  - name: includedHeaders
    value: "dapr-caller-app-id"
  - name: rego
    value: |
${indent(VISIBLE_POLICY, 6)}
`);
  fs.writeFileSync(path.join(vres, 'config.yaml'), fs.readFileSync(path.join(res, 'config.yaml')));
  for (const [id, args] of [['inventory-json', ['--json']], ['inventory-sse', []]]) {
    const a = await h.startNodeApp(`${id}-app`, INVENTORY, { args });
    visApps[id] = { app: a, sidecar: await h.startSidecar({ appId: id, appPort: a.port, home, extraArgs: ['--resources-path', vres, '--config', path.join(vres, 'config.yaml')] }) };
  }
}, HOOK_TIMEOUT);

const url = (agent) => `${agents[agent].url}/v1.0/invoke/inventory/method/mcp`;
const ran = (tool, caller) => app.output().includes(`[inventory] ran ${tool} caller=${caller}`);

async function refused(promise) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof StreamableHTTPError || /403/.test(String(err?.message)), String(err));
    assert.match(String(err.message), /403|Forbidden/);
    return true;
  });
}

h.test('analyst-agent lists tools and calls get_inventory, is refused update_stock', { skip }, async () => {
  const { client } = await h.mcpClient(url('analyst-agent'));
  const tools = await client.listTools();
  assert.ok(tools.tools.some((t) => t.name === 'update_stock'), 'no visible_tools: every tool is listed');
  const r = await client.callTool({ name: 'get_inventory', arguments: { sku: 'widget' } });
  assert.equal(r.content[0].text, 'widget: 42');
  assert.ok(ran('get_inventory', 'analyst-agent'));
  await refused(client.callTool({ name: 'update_stock', arguments: { sku: 'widget', delta: 1 } }));
  await refused(client.callTool({ name: 'drop_table', arguments: { name: 'stock' } }));
  assert.ok(!ran('update_stock', 'analyst-agent') && !ran('drop_table', 'analyst-agent'), 'a refused call ran');
});

h.test('ops-agent may call update_stock', { skip }, async () => {
  const { client } = await h.mcpClient(url('ops-agent'));
  const r = await client.callTool({ name: 'update_stock', arguments: { sku: 'widget', delta: 5 } });
  assert.equal(r.content[0].text, 'widget += 5');
  await refused(client.callTool({ name: 'get_schema', arguments: {} }));
});

h.test('an unknown caller is refused every tool', { skip }, async () => {
  const { client } = await h.mcpClient(url('unknown-agent'));
  for (const name of ['get_inventory', 'update_stock', 'list_products']) await refused(client.callTool({ name, arguments: { sku: 'x', delta: 1 } }));
  assert.ok(!app.output().includes('caller=unknown-agent'), 'a tool ran for the unknown caller');
});

const post = (agent, body, headers = {}) =>
  httpRequest(url(agent), { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(body) });

h.test('a batch cannot smuggle a forbidden call; headers must agree with the body', { skip }, async () => {
  const batch = [
    { jsonrpc: '2.0', id: 1, method: 'tools/list' },
    { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'update_stock', arguments: { sku: 'w', delta: 9 } } },
  ];
  const r = await post('analyst-agent', batch);
  assert.equal(r.status, 403, r.text);
  assert.equal(r.text, 'Forbidden');
  assert.ok(!ran('update_stock', 'analyst-agent'));
  // A 2026-07-28 request whose Mcp-Name says get_inventory while the body calls update_stock.
  const call = { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'update_stock', arguments: { sku: 'w', delta: 9 } } };
  const m = await post('ops-agent', call, { 'mcp-method': 'tools/call', 'mcp-name': 'get_inventory' });
  assert.equal(m.status, 400, m.text);
  assert.match(m.text, /ERR_MCP_HEADER_MISMATCH/);
  // Duplicate keys are not a way around the policy either.
  const dup = await httpRequest(url('analyst-agent'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: '{"jsonrpc":"2.0","id":4,"method":"tools/list","method":"tools/call","params":{"name":"update_stock","arguments":{"sku":"w","delta":1}}}',
  });
  assert.notEqual(dup.status, 200, dup.text);
  assert.ok(!ran('update_stock', 'analyst-agent'));
});

h.test('visible_tools: tools/list shows each caller only its tools (JSON and SSE responses)', { skip }, async () => {
  const want = { 'analyst-agent': ['get_inventory', 'get_schema'], 'ops-agent': ['get_inventory', 'update_stock'], 'unknown-agent': [] };
  for (const target of ['inventory-json', 'inventory-sse']) {
    for (const [agent, names] of Object.entries(want)) {
      const { client } = await h.mcpClient(`${agents[agent].url}/v1.0/invoke/${target}/method/mcp`);
      const listed = (await client.listTools()).tools.map((t) => t.name).sort();
      assert.deepEqual(listed, names, `${agent} via ${target}`);
      if (names.length > 0) {
        const r = await client.callTool({ name: names[0], arguments: { sku: 'widget', delta: 1 } });
        assert.ok(r.content[0].text.length > 0);
      }
      await refused(client.callTool({ name: 'drop_table', arguments: { name: 'x' } }));
      await client.close();
    }
  }
  // The raw responses keep their framing: SSE stays an event stream, JSON stays JSON.
  const body = { jsonrpc: '2.0', id: 7, method: 'tools/list' };
  const sse = await httpRequest(`${agents['analyst-agent'].url}/v1.0/invoke/inventory-sse/method/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify(body) });
  assert.equal(sse.status, 200);
  assert.match(sse.headers.get('content-type'), /text\/event-stream/);
  const data = sse.text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
  assert.deepEqual(data[0].result.tools.map((t) => t.name).sort(), ['get_inventory', 'get_schema']);
  const json = await httpRequest(`${agents['analyst-agent'].url}/v1.0/invoke/inventory-json/method/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify(body) });
  assert.equal(json.status, 200);
  assert.deepEqual(json.json.result.tools.map((t) => t.name).sort(), ['get_inventory', 'get_schema']);
});

h.test('/v1.0/metadata names the middleware Component and the Configuration source', { skip }, async () => {
  const m = (await httpRequest(`${server.url}/v1.0/metadata`)).json;
  assert.ok(m.components.some((c) => c.name === 'tool-policy' && c.type === 'middleware.http.opa'), JSON.stringify(m));
  assert.equal(m.configuration.name, 'inventory');
  assert.match(m.configuration.source, /config\.yaml$/);
  assert.deepEqual(m.resiliencies, []);
});

h.test('input.mcp: a batch is allowed only when every message is (example policy with every)', { skip }, async () => {
  const u = `${agents['analyst-agent'].url}/v1.0/invoke/inventory-json/method/mcp`;
  const send = (body) => httpRequest(u, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify(body) });
  const ok = await send([
    { jsonrpc: '2.0', id: 1, method: 'tools/list' },
    { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'get_inventory', arguments: { sku: 'w' } } },
  ]);
  assert.notEqual(ok.status, 403, ok.text);
  const bad = await send([
    { jsonrpc: '2.0', id: 3, method: 'tools/list' },
    { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'update_stock', arguments: { sku: 'w', delta: 1 } } },
  ]);
  assert.equal(bad.status, 403, bad.text);
  assert.ok(!visApps['inventory-json'].app.output().includes('ran update_stock caller=analyst-agent'));
});
