// Resiliency (spec dapr.md §5): timeouts, retries and circuit breakers on the caller sidecar.
//
//   client -> sidecar "agent" (--resources-path with a Resiliency) -> sidecar "flaky"   -> flaky app
//                                                                 -> sidecar "breaker" -> flaky app
//                                                                 -> HTTPEndpoint "flaky-ep" (the
//                                                                    flaky app, called directly)
//
// The apps are apps/flaky-mcp-server.mjs (official SDK, stateless): a test scripts their next
// failures (503, hang, reset, partial response) through /control and reads /stats to learn how
// many times a JSON-RPC method really reached the app.
import { before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Harness, APPS_DIR, needsSidecar, sleep, waitFor, httpRequest, HOOK_TIMEOUT } from './lib/harness.mjs';

const FLAKY_APP = path.join(APPS_DIR, 'flaky-mcp-server.mjs');
const TIMEOUT_MS = 1500;
const CB_TIMEOUT_MS = 2000;

const h = new Harness();
let agent, flaky, breaker, resDir;

function resiliencyYaml({ retryToolCalls = false } = {}) {
  return `apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: e2e-resiliency
scopes: [agent]
spec:
  policies:
    timeouts:
      short: ${TIMEOUT_MS}ms
    retries:
      three:
        policy: constant
        duration: 100ms
        maxRetries: 3
        retryToolCalls: ${retryToolCalls}
        matching:
          httpStatusCodes: "503"
    circuitBreakers:
      cb:
        maxRequests: 1
        timeout: ${CB_TIMEOUT_MS}ms
        trip: consecutiveFailures >= 3
  targets:
    apps:
      flaky:
        timeout: short
        retry: three
      breaker:
        circuitBreaker: cb
      flaky-ep:
        timeout: short
        retry: three
`;
}

before(async () => {
  if (needsSidecar) return;
  const home = h.tmpHome();
  resDir = h.tmpHome('outrigger-resiliency-res-');
  fs.writeFileSync(path.join(resDir, 'resiliency.yaml'), resiliencyYaml());
  const start = async (appId) => {
    const app = await h.startNodeApp(appId, FLAKY_APP);
    await h.startSidecar({ appId, appPort: app.port, home });
    return { app, control: `http://127.0.0.1:${app.port}` };
  };
  flaky = await start('flaky');
  breaker = await start('breaker');
  // The flaky app once more, as an HTTPEndpoint the agent calls directly (no sidecar on the way).
  fs.writeFileSync(
    path.join(resDir, 'endpoint.yaml'),
    `apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata:\n  name: flaky-ep\nspec:\n  baseUrl: http://127.0.0.1:${flaky.app.port}\n`,
  );
  agent = await h.startSidecar({ appId: 'agent', home, extraArgs: ['--resources-path', resDir] });
}, HOOK_TIMEOUT);

const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };
let nextId = 1;

/** One JSON-RPC request through the agent sidecar to `appId`; resolves {status, json, text, ms}. */
async function rpc(appId, method, params = {}, { timeoutMs = 20000 } = {}) {
  const t0 = Date.now();
  const r = await httpRequest(`${agent.url}/v1.0/invoke/${appId}/method/mcp`, {
    method: 'POST',
    headers: mcpHeaders,
    body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params }),
    timeoutMs,
  });
  return { ...r, ms: Date.now() - t0 };
}

async function script(target, fault, count, methods) {
  await httpRequest(`${target.control}/control`, { method: 'POST', body: JSON.stringify({ fault, count, methods }) });
  await httpRequest(`${target.control}/stats/reset`, { method: 'POST' });
}

async function received(target, method) {
  const s = (await httpRequest(`${target.control}/stats`)).json;
  return method ? s.byMethod[method] ?? 0 : s.total;
}

async function metrics() {
  return (await httpRequest(`http://127.0.0.1:${agent.metricsPort}/metrics`)).text;
}

const initParams = { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'e2e', version: '1' } };

h.test('tools/list: two 503s are retried and the third attempt succeeds (SDK client)', { skip: needsSidecar }, async () => {
  await script(flaky, '503', 2, ['tools/list']);
  const { client } = await h.mcpClient(`${agent.url}/v1.0/invoke/flaky/method/mcp`);
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name), ['echo']);
  assert.equal(await received(flaky, 'tools/list'), 3, 'tools/list reached the app three times');
  await client.close();
  const m = await metrics();
  assert.match(m, /dapr_resiliency_activations_total\{app_id="agent",name="e2e-resiliency",policy="retry",namespace="default",flow_direction="outbound",target="app_flaky",status=""\} ([2-9]|\d\d+)/);
  assert.match(m, /dapr_resiliency_count\{[^}]*policy="timeout"[^}]*target="app_flaky"[^}]*\} \d+/);
  assert.match(m, /dapr_resiliency_loaded\{app_id="agent",name="e2e-resiliency",namespace="default"\} 1/);
});

h.test('initialize and ping are retried too; retries stop at maxRetries', { skip: needsSidecar }, async () => {
  await script(flaky, '503', 1, ['initialize']);
  let r = await rpc('flaky', 'initialize', initParams);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.result.serverInfo.name, 'outrigger-e2e-flaky-mcp-server');
  assert.equal(await received(flaky, 'initialize'), 2);
  await script(flaky, '503', 10, ['ping']);
  r = await rpc('flaky', 'ping');
  // 1 attempt + maxRetries 3: the last 503 is the app's own answer, passed through.
  assert.equal(r.status, 503, r.text);
  assert.deepEqual(r.json, { error: 'scripted 503', method: 'ping' });
  assert.equal(await received(flaky, 'ping'), 4);
});

h.test('tools/call is not retried by default even when the policy matches its status', { skip: needsSidecar }, async () => {
  await script(flaky, '503', 1, ['tools/call']);
  const r = await rpc('flaky', 'tools/call', { name: 'echo', arguments: { message: 'once' } });
  assert.equal(r.status, 503, r.text);
  assert.equal(await received(flaky, 'tools/call'), 1, 'the tool call reached the app exactly once');
  // The same failure on tools/list is retried.
  await script(flaky, '503', 1, ['tools/list']);
  const l = await rpc('flaky', 'tools/list');
  assert.equal(l.status, 200, l.text);
  assert.equal(await received(flaky, 'tools/list'), 2);
});

h.test('a reset connection is retried', { skip: needsSidecar }, async () => {
  await script(flaky, 'reset', 2, ['tools/list']);
  const r = await rpc('flaky', 'tools/list');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.result.tools[0].name, 'echo');
  assert.equal(await received(flaky, 'tools/list'), 3);
});

h.test("a timeout answers with Dapr's error body after the configured time (±20%)", { skip: needsSidecar }, async () => {
  // tools/call: one attempt only (not retried), so the time is one timeout.
  await script(flaky, 'hang', 1, ['tools/call']);
  const r = await rpc('flaky', 'tools/call', { name: 'echo', arguments: { message: 'hang' } });
  assert.equal(r.status, 500, r.text);
  assert.deepEqual(r.json, { errorCode: 'ERR_DIRECT_INVOKE', message: 'failed to invoke, id: flaky, err: context deadline exceeded' });
  assert.ok(r.ms >= TIMEOUT_MS * 0.8 && r.ms <= TIMEOUT_MS * 1.2, `answered after ${r.ms} ms, want ${TIMEOUT_MS} ±20%`);
  assert.equal(await received(flaky, 'tools/call'), 1);
  // A hang on a retryable method: the attempt times out, the retry succeeds.
  await script(flaky, 'hang', 1, ['tools/list']);
  const l = await rpc('flaky', 'tools/list');
  assert.equal(l.status, 200, l.text);
  assert.ok(l.ms >= TIMEOUT_MS * 0.8, `retry came after the timeout (${l.ms} ms)`);
  assert.equal(await received(flaky, 'tools/list'), 2);
  assert.match(await metrics(), /dapr_resiliency_activations_total\{[^}]*policy="timeout"[^}]*target="app_flaky"[^}]*\} [1-9]/);
});

h.test('a retry never repeats a request whose response had started streaming', { skip: needsSidecar }, async () => {
  await script(flaky, 'partial', 1, ['tools/list']);
  const res = await fetch(`${agent.url}/v1.0/invoke/flaky/method/mcp`, {
    method: 'POST',
    headers: mcpHeaders,
    body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method: 'tools/list', params: {} }),
    signal: AbortSignal.timeout(10000),
  });
  assert.equal(res.status, 200, 'the head was forwarded as it came');
  await assert.rejects(res.text(), 'the body is cut, not completed by a second attempt');
  await sleep(500);
  assert.equal(await received(flaky, 'tools/list'), 1, 'the request was not sent again');
});

h.test('an SSE response outlives the request timeout (governed by the idle timeout)', { skip: needsSidecar }, async () => {
  await script(flaky, 'slow-sse', 1, ['tools/call']);
  const r = await rpc('flaky', 'tools/call', { name: 'echo', arguments: { message: 'stream' } });
  assert.equal(r.status, 200, r.text);
  assert.ok(r.ms >= 2 * TIMEOUT_MS, `the stream ran ${r.ms} ms, longer than the ${TIMEOUT_MS} ms timeout`);
  const events = r.text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
  assert.equal(events.length, 11, r.text);
  assert.deepEqual(events[10].result, { events: 10 });
  assert.equal(await received(flaky, 'tools/call'), 1);
});

h.test('an HTTPEndpoint target gets the same policies as an app target', { skip: needsSidecar }, async () => {
  await script(flaky, '503', 2, ['tools/list']);
  const r = await rpc('flaky-ep', 'tools/list');
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.result.tools[0].name, 'echo');
  assert.equal(await received(flaky, 'tools/list'), 3, 'retried twice');
  await script(flaky, '503', 1, ['tools/call']);
  const c = await rpc('flaky-ep', 'tools/call', { name: 'echo', arguments: { message: 'x' } });
  assert.equal(c.status, 503, 'tools/call not retried');
  assert.equal(await received(flaky, 'tools/call'), 1);
  await script(flaky, 'hang', 1, ['tools/call']);
  const t = await rpc('flaky-ep', 'tools/call', { name: 'echo', arguments: { message: 'hang' } });
  assert.equal(t.status, 500, t.text);
  assert.deepEqual(t.json, { errorCode: 'ERR_DIRECT_INVOKE', message: 'failed to invoke, id: flaky-ep, err: context deadline exceeded' });
  assert.ok(t.ms >= TIMEOUT_MS * 0.8 && t.ms <= TIMEOUT_MS * 1.2, `answered after ${t.ms} ms`);
});

h.test('circuit breaker: opens after the trip condition, rejects without contacting the app, half-opens, closes', { skip: needsSidecar }, async () => {
  await script(breaker, '503', 3);
  for (let i = 0; i < 3; i++) {
    const r = await rpc('breaker', 'tools/list');
    assert.equal(r.status, 503, `attempt ${i + 1}: ${r.text}`);
  }
  assert.equal(await received(breaker), 3);
  const open = await rpc('breaker', 'tools/list');
  assert.equal(open.status, 500, open.text);
  assert.deepEqual(open.json, { errorCode: 'ERR_DIRECT_INVOKE', message: 'failed to invoke, id: breaker, err: circuit breaker is open' });
  assert.ok(open.ms < 500, `answered at once (${open.ms} ms)`);
  assert.equal(await received(breaker), 3, 'the open breaker did not contact the app');
  assert.match(agent.proc.output(), /circuit breaker cb for breaker:mcp changed state to open/);
  assert.match(await metrics(), /dapr_resiliency_cb_state\{[^}]*target="app_breaker",status="open"\} 2/);
  // After `timeout` the breaker is half-open: one probe goes through and closes it.
  await sleep(CB_TIMEOUT_MS + 200);
  const probe = await rpc('breaker', 'tools/list');
  assert.equal(probe.status, 200, probe.text);
  assert.equal(await received(breaker), 4);
  const after = await rpc('breaker', 'tools/list');
  assert.equal(after.status, 200, after.text);
  const log = agent.proc.output();
  assert.match(log, /changed state to half-open/);
  assert.match(log, /changed state to closed/);
  assert.match(await metrics(), /dapr_resiliency_cb_state\{[^}]*target="app_breaker",status="closed"\} 0/);
});

h.test('hot reload: retryToolCalls: true lets a tools/call be retried', { skip: needsSidecar }, async () => {
  fs.writeFileSync(path.join(resDir, 'resiliency.yaml'), resiliencyYaml({ retryToolCalls: true }));
  await waitFor('resiliency reloaded', async () => /resiliency resources reloaded/.test(agent.proc.output()), { timeoutMs: 10000 });
  await script(flaky, '503', 1, ['tools/call']);
  const r = await rpc('flaky', 'tools/call', { name: 'echo', arguments: { message: 'twice' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.result.content[0].text, 'Echo: twice');
  assert.equal(await received(flaky, 'tools/call'), 2);
  // A broken edit is refused and the policies in force stay.
  fs.writeFileSync(path.join(resDir, 'resiliency.yaml'), resiliencyYaml().replace('maxRetries: 3', 'maxRetries: lots'));
  await waitFor('invalid resiliency logged', async () => /maxRetries: must be -1/.test(agent.proc.output()), { timeoutMs: 10000 });
  await script(flaky, '503', 1, ['tools/call']);
  const again = await rpc('flaky', 'tools/call', { name: 'echo', arguments: { message: 'still' } });
  assert.equal(again.status, 200, again.text);
});

h.test('/v1.0/metadata lists the Resiliency resources in force', { skip: needsSidecar }, async () => {
  const m = (await httpRequest(`${agent.url}/v1.0/metadata`)).json;
  assert.deepEqual(m.resiliencies, [{ name: 'e2e-resiliency' }]);
  assert.ok(m.httpEndpoints.some((e) => e.name === 'flaky-ep'));
});
