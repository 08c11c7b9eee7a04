// Observability (issue 7), end to end with real sidecars (mTLS on), the official MCP SDK as client
// and server, a real Prometheus server and an OTLP/HTTP receiver fed by the sidecars and by the
// OpenTelemetry JS SDK:
//   1. Prometheus scrapes both sidecars during an MCP run; its HTTP API returns the invocation
//      counts by caller/target, an ACL denial (Dapr's counter and the MCP denial counter with
//      layer="acl") and the per-tool counter with the right tool name;
//   2. one trace: agent span (OpenTelemetry JS) → agent sidecar span → server sidecar span → the
//      app, for a tools/call, with parent/child links, the client's trace id kept and the MCP
//      attributes set;
//   3. --log-as-json output parses line by line, with the API log and the audit line of the
//      tool call (caller, target, tool, outcome, latency, trace id; arguments redacted);
//   4. samplingRate "0" exports nothing;
//   5. an unreachable collector does not slow requests (measured against tracing off).
import { before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { context, trace, SpanKind, defaultTextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { TracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Harness, MCP_SERVER_APP, RAW_APP, OUTRIGGER_BIN, DIRECT, HOOK_TIMEOUT, freePort, haveCommand, httpRequest, sleep, waitFor } from './lib/harness.mjs';

const h = new Harness();
const skip = DIRECT
  ? 'E2E_DIRECT=1: needs real sidecars'
  : /fake-outrigger\.mjs$/.test(OUTRIGGER_BIN)
    ? 'the fake sidecar has no observability'
    : false;

/** An OTLP/HTTP (JSON) receiver: collects every span POSTed to /v1/traces (over TLS with tls). */
async function startReceiver(tls) {
  const spans = [];
  let requests = 0;
  const server = (tls ? https.createServer.bind(null, tls) : http.createServer)((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests++;
      if (req.socket.obsUsed) reused++;
      req.socket.obsUsed = true;
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !/json/.test(req.headers['content-type'] ?? '')) {
        res.writeHead(415).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString());
      for (const rs of body.resourceSpans ?? []) {
        const attrs = Object.fromEntries((rs.resource?.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]]));
        for (const ss of rs.scopeSpans ?? [])
          for (const s of ss.spans ?? [])
            spans.push({ ...s, service: attrs['service.name'], attrs: Object.fromEntries((s.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]])), headers: req.headers });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  let connections = 0, reused = 0;
  server.on(tls ? 'secureConnection' : 'connection', () => connections++);
  const port = await freePort();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  h.onCleanup(() => { server.closeAllConnections?.(); return new Promise((r) => server.close(r)); });
  return { port, spans, get requests() { return requests; }, get connections() { return connections; }, get reused() { return reused; } };
}

/** A Configuration with the given spec body (YAML, indented 2). */
function writeConfig(dir, name, spec) {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, `apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: ${name}\nspec:\n${spec.trim().split('\n').map((l) => `  ${l}`).join('\n')}\n`);
  return file;
}

let home, confDir, receiver, server, agent, intruder;
const TRACE_ENV = { OTEL_BSP_SCHEDULE_DELAY: '200' };

before(async () => {
  if (skip) return;
  home = h.tmpHome();
  confDir = h.tmpHome('outrigger-obs-conf-');
  receiver = await startReceiver();
  const tracing = `
tracing:
  samplingRate: "1"
  otel:
    endpointAddress: 127.0.0.1:${receiver.port}
    protocol: http
    isSecure: false
    headers:
      - name: x-collector-key
        value: e2e
logging:
  apiLogging:
    enabled: true
    omitHealthChecks: true
  mcpAudit:
    arguments: true
    redact: [message]`;
  const serverConf = writeConfig(confDir, 'server', `${tracing}
accessControl:
  defaultAction: deny
  trustDomain: public
  policies:
    - appId: analyst-agent
      defaultAction: allow
      trustDomain: public
      namespace: default
${['zero-agent', 'tls-agent', 'tls-wrong-ca'].map((id) => `    - appId: ${id}
      defaultAction: allow
      trustDomain: public
      namespace: default`).join('\n')}`);
  const agentConf = writeConfig(confDir, 'agent', tracing);
  const app = await h.startNodeApp('mcp-server-app', MCP_SERVER_APP);
  server = await h.startSidecar({ appId: 'mcp-server', appPort: app.port, home, extraArgs: ['--config', serverConf, '--log-as-json'], env: TRACE_ENV });
  agent = await h.startSidecar({ appId: 'analyst-agent', home, extraArgs: ['--config', agentConf, '--log-as-json'], env: TRACE_ENV });
  intruder = await h.startSidecar({ appId: 'intruder-agent', home });
}, HOOK_TIMEOUT);

const mcpUrl = (sidecar) => `${sidecar.url}/v1.0/invoke/mcp-server/method/mcp`;

/** Runs initialize + tools/call echo through the agent's sidecar; returns the tool's text. */
async function echoThrough(sidecar, message, headers = {}) {
  const { client } = await h.mcpClient(mcpUrl(sidecar), { headers });
  const r = await client.callTool({ name: 'echo', arguments: { message } });
  await client.close();
  return r.content[0].text;
}

let promPort;
async function promQuery(q) {
  const r = await httpRequest(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
  const j = r.json;
  assert.equal(j?.status, 'success', r.text);
  return j.data.result;
}

h.test('Prometheus scrapes both sidecars: counts by caller/target, an ACL denial, a per-tool counter', { skip: skip || (!haveCommand('prometheus') && 'prometheus is not installed (scripts/install-deps.sh)'), timeout: 120000 }, async () => {
  const dir = h.tmpHome('outrigger-prom-');
  promPort = await freePort();
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: outrigger\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['127.0.0.1:${server.metricsPort}', '127.0.0.1:${agent.metricsPort}', '127.0.0.1:${intruder.metricsPort}']\n`);
  const prom = h.spawn('prometheus', 'prometheus', [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`]);
  await waitFor('prometheus ready', async () => (await httpRequest(`http://127.0.0.1:${promPort}/-/ready`, { timeoutMs: 1000 }).catch(() => ({}))).status === 200, { timeoutMs: 30000, proc: prom });

  for (let i = 0; i < 3; i++) assert.equal(await echoThrough(agent, `hello ${i}`), `Echo: hello ${i}`);
  // The intruder is refused by accessControl on the server's sidecar.
  const denied = await httpRequest(mcpUrl(intruder), { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-method': 'tools/call', 'mcp-name': 'echo' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x' } } }) });
  assert.equal(denied.status, 403);

  const q = {
    sent: 'sum(dapr_runtime_service_invocation_req_sent_total{app_id="analyst-agent",dst_app_id="mcp-server"})',
    recv: 'sum(dapr_runtime_service_invocation_req_recv_total{app_id="mcp-server",src_app_id="analyst-agent"})',
    resRecv: 'sum(dapr_runtime_service_invocation_res_recv_total{app_id="analyst-agent",src_app_id="mcp-server",status="200"})',
    aclBlocked: 'sum(dapr_runtime_acl_global_policy_action_blocked_total{app_id="mcp-server"})',
    mcpDenied: 'sum(outrigger_mcp_denied_total{app_id="mcp-server",layer="acl",caller_app_id="intruder-agent",target_app_id="mcp-server",mcp_method="tools/call",tool="echo"})',
    tool: 'sum(outrigger_mcp_requests_total{app_id="mcp-server",side="server",caller_app_id="analyst-agent",target_app_id="mcp-server",mcp_method="tools/call",tool="echo",status="200"})',
    toolClient: 'sum(outrigger_mcp_requests_total{app_id="analyst-agent",side="client",target_app_id="mcp-server",mcp_method="tools/call",tool="echo"})',
    latency: 'sum(outrigger_mcp_request_latency_ms_count{app_id="mcp-server",tool="echo"})',
    httpServer: 'sum(dapr_http_server_request_count{app_id="analyst-agent",method="POST",path="/v1.0/invoke/mcp-server/method/mcp",status="200"})',
    appChannel: 'sum(dapr_http_client_completed_count{app_id="mcp-server",method="POST",path="/mcp",status="200"})',
  };
  const want = { sent: 3 * 3, recv: 3 * 3, resRecv: 3 * 2, aclBlocked: 1, mcpDenied: 1, tool: 3, toolClient: 3, latency: 3, httpServer: 3 * 2, appChannel: 3 * 2 };
  let got = {};
  await waitFor('expected series in Prometheus', async () => {
    got = {};
    for (const [k, expr] of Object.entries(q)) {
      const r = await promQuery(expr);
      got[k] = r.length ? Number(r[0].value[1]) : 0;
    }
    got.up = (await promQuery('up{job="outrigger"} == 1')).length;
    return Object.keys(want).every((k) => got[k] >= want[k]) && got.up === 3;
  }, { timeoutMs: 20000, intervalMs: 500 }).catch(() => {});
  // Each MCP session: initialize (POST), notifications/initialized (POST, 202), tools/call (POST),
  // plus the GET stream and DELETE; the exact totals depend on the SDK, the minima do not.
  // Every scrape parsed: Prometheus marks a target whose exposition it cannot read as down.
  const up = await promQuery('up{job="outrigger"}');
  assert.equal(up.length, 3);
  for (const u of up) assert.equal(u.value[1], '1', JSON.stringify(u));
  for (const k of Object.keys(want)) assert.ok(got[k] >= want[k], `${k}: ${q[k]} = ${got[k]}, want >= ${want[k]} (all: ${JSON.stringify(got)})`);
  assert.equal(got.tool, 3, 'exactly one server-side tools/call per echo');
  assert.equal(got.mcpDenied, 1);
});

h.test('one trace spans agent → agent sidecar → server sidecar → app for a tools/call', { skip }, async () => {
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: new OTLPTraceExporter({ url: `http://127.0.0.1:${receiver.port}/v1/traces` }) })] });
  const tracer = provider.getTracer('e2e-agent');
  const root = tracer.startSpan('agent turn', { kind: SpanKind.CLIENT });
  const carrier = {};
  new W3CTraceContextPropagator().inject(trace.setSpan(context.active(), root), carrier, defaultTextMapSetter);
  const traceId = root.spanContext().traceId;
  assert.match(carrier.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);

  const { client } = await h.mcpClient(mcpUrl(agent), { headers: { traceparent: carrier.traceparent, tracestate: 'e2e=1', baggage: 'user=alice' } });
  const r = await client.callTool({ name: 'whoami', arguments: {} });
  await client.close();
  root.end();
  await provider.forceFlush();
  const seen = JSON.parse(r.content[0].text).headers;

  const inTrace = () => receiver.spans.filter((s) => s.traceId === traceId);
  await waitFor('spans of both sidecars', () => inTrace().some((s) => s.service === 'mcp-server' && s.attrs['mcp.method.name'] === 'tools/call') && inTrace().some((s) => s.service === 'analyst-agent' && s.attrs['mcp.method.name'] === 'tools/call'), { timeoutMs: 10000 });
  const spans = inTrace();
  const agentRoot = spans.find((s) => s.name === 'agent turn');
  const a = spans.find((s) => s.service === 'analyst-agent' && s.attrs['mcp.method.name'] === 'tools/call');
  const b = spans.find((s) => s.service === 'mcp-server' && s.attrs['mcp.method.name'] === 'tools/call');
  assert.ok(agentRoot, 'the OpenTelemetry JS span reached the receiver');
  // Parent/child: agent span → agent sidecar (client) → server sidecar (server) → the app.
  assert.equal(a.parentSpanId, agentRoot.spanId);
  assert.equal(b.parentSpanId, a.spanId);
  assert.equal(a.kind, 3);
  assert.equal(b.kind, 2);
  const [, appTrace, appParent, appFlags] = seen.traceparent.split('-');
  assert.equal(appTrace, traceId, 'the app sees the client trace id');
  assert.equal(appParent, b.spanId, "the app's parent is the server sidecar's span");
  assert.equal(appFlags, '01');
  assert.equal(seen.tracestate, 'e2e=1');
  assert.equal(seen.baggage, 'user=alice');
  // MCP and HTTP semantic conventions.
  for (const s of [a, b]) {
    assert.equal(s.name, 'tools/call whoami');
    assert.equal(s.attrs['gen_ai.tool.name'], 'whoami');
    assert.equal(s.attrs['gen_ai.operation.name'], 'execute_tool');
    assert.equal(s.attrs['http.request.method'], 'POST');
    assert.equal(s.attrs['url.path'], '/mcp');
    assert.match(s.attrs['jsonrpc.request.id'], /^\d+$/);
    assert.match(s.attrs['mcp.protocol.version'], /^\d{4}-\d{2}-\d{2}$/);
    assert.equal(s.attrs['http.response.status_code'], '200');
    assert.equal(s.attrs['dapr.caller_app_id'], 'analyst-agent');
    assert.equal(s.attrs['dapr.callee_app_id'], 'mcp-server');
    assert.match(s.attrs['mcp.session.id'], /^[0-9a-f-]{36}$/);
    assert.ok(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano));
  }
  assert.equal(a.attrs['mcp.session.id'], b.attrs['mcp.session.id']);
  // initialize carries no session id; the one its response assigns is on its span.
  const init = spans.find((s) => s.service === 'mcp-server' && s.attrs['mcp.method.name'] === 'initialize');
  assert.equal(init?.attrs['mcp.session.id'], b.attrs['mcp.session.id']);
  assert.equal(init.name, 'initialize');
  assert.equal(b.headers['x-collector-key'], 'e2e', 'tracing.otel.headers are sent to the collector');
  // A later batch reuses the exporter's connection (keep-alive) instead of opening another.
  const reusedBefore = receiver.reused;
  assert.equal(await echoThrough(agent, 'again'), 'Echo: again');
  await waitFor('a later batch on a kept connection', () => receiver.reused > reusedBefore, { timeoutMs: 5000 });
  await provider.shutdown();
});

h.test('JSON logs parse line by line; API log and the audit line of each tool call', { skip }, async () => {
  assert.equal(await echoThrough(agent, 'audit me'), 'Echo: audit me');
  let audit = [];
  await waitFor('audit line', () => {
    audit = server.proc.output().split('\n').filter((l) => l.includes('"scope":"audit"')).map((l) => JSON.parse(l));
    return audit.some((a) => a.tool === 'echo');
  }, { timeoutMs: 5000 });
  for (const s of [server, agent]) {
    const lines = s.proc.output().split('\n').filter((l) => l.trim() && !l.startsWith('<<'));
    assert.ok(lines.length > 5);
    for (const l of lines) {
      const j = JSON.parse(l); // throws on any line that is not one JSON object
      for (const k of ['time', 'level', 'app_id', 'scope', 'message']) assert.ok(k in j, `${k} in ${l}`);
      assert.equal(j.app_id, s.appId);
    }
  }
  // The audit line is structured: one JSON member per fact.
  const a = audit.find((x) => x.tool === 'echo' && x.caller === 'analyst-agent');
  assert.equal(a.message, 'mcp tool call');
  assert.equal(a.target, 'mcp-server');
  assert.equal(a.outcome, 'ok');
  assert.equal(a.status, 200);
  assert.equal(typeof a.latency_ms, 'number');
  assert.ok(a.latency_ms > 0 && a.latency_ms < 10000);
  assert.match(a.trace_id, /^[0-9a-f]{32}$/);
  assert.match(a.session, /^[0-9a-f-]{36}$/);
  assert.deepEqual(a.arguments, { message: '[REDACTED]' });
  assert.ok(!audit.some((x) => JSON.stringify(x).includes('audit me')), 'redacted argument values never reach the log');
  const api = agent.proc.output().split('\n').filter((l) => l.includes('"scope":"api"')).map((l) => JSON.parse(l));
  assert.ok(api.some((x) => x.message === 'HTTP API Called' && x.method === 'POST' && x.url === '/v1.0/invoke/mcp-server/method/mcp' && x.code === 200 && typeof x.duration_ms === 'number'), JSON.stringify(api));
  assert.ok(!api.some((x) => x.url.includes('healthz')), 'omitHealthChecks');
});

h.test('samplingRate "0" exports nothing; metrics.enabled false serves no metrics', { skip }, async () => {
  const conf = writeConfig(confDir, 'zero', `tracing:\n  samplingRate: "0"\n  otel:\n    endpointAddress: 127.0.0.1:${receiver.port}\n    protocol: http\n    isSecure: false\nmetrics:\n  enabled: false`);
  const zeroAgent = await h.startSidecar({ appId: 'zero-agent', home, extraArgs: ['--config', conf], env: TRACE_ENV });
  const before = receiver.spans.length;
  for (let i = 0; i < 3; i++) assert.equal(await echoThrough(zeroAgent, `z${i}`), `Echo: z${i}`);
  await sleep(1000); // five export intervals
  assert.equal(receiver.spans.filter((s) => s.service === 'zero-agent').length, 0);
  // The server side still follows the caller's decision (sampled=0): no server span either.
  const serverSpans = receiver.spans.slice(before).filter((s) => s.service === 'mcp-server' && s.attrs['dapr.caller_app_id'] === 'zero-agent');
  assert.equal(serverSpans.length, 0);
  await assert.rejects(httpRequest(`http://127.0.0.1:${zeroAgent.metricsPort}/metrics`, { timeoutMs: 2000 }));
  assert.match(zeroAgent.proc.output(), /started/);
});

/** Median latencies (ms) of n sequential GETs through each sidecar to the raw app, interleaved
 * request by request so that load from elsewhere on the machine hits both alike. */
async function medianLatencies(sidecars, n) {
  const t = sidecars.map(() => []);
  for (let i = 0; i < n; i++) {
    for (const [k, sc] of sidecars.entries()) {
      const s = process.hrtime.bigint();
      const r = await httpRequest(`${sc.url}/v1.0/invoke/raw/method/healthz`);
      assert.equal(r.status, 200);
      t[k].push(Number(process.hrtime.bigint() - s) / 1e6);
    }
  }
  return t.map((x) => x.sort((a, b) => a - b)[Math.floor(n / 2)]);
}

h.test('an unreachable collector does not slow requests (measured)', { skip, timeout: 120000 }, async () => {
  // A collector that accepts connections and never answers: the worst case for an exporter.
  const sockets = [];
  const black = http.createServer(() => {});
  black.on('connection', (s) => sockets.push(s));
  const blackPort = await freePort();
  await new Promise((r) => black.listen(blackPort, '127.0.0.1', r));
  h.onCleanup(() => { sockets.forEach((s) => s.destroy()); return new Promise((r) => black.close(r)); });

  const raw = await h.startNodeApp('raw', RAW_APP);
  const rawSidecar = await h.startSidecar({ appId: 'raw', appPort: raw.port, home });
  const off = await h.startSidecar({ appId: 'plain-agent', home });
  const dead = await h.startSidecar({
    appId: 'traced-agent', home,
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${blackPort}`, OTEL_EXPORTER_OTLP_TIMEOUT: '3000', OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_BSP_MAX_QUEUE_SIZE: '64' },
  });
  await medianLatencies([off, dead], 20); // warm up connections and caches
  const n = 300;
  const [mOff, mDead] = await medianLatencies([off, dead], n);
  process.stderr.write(`unreachable collector: median ${mDead.toFixed(3)} ms vs tracing off ${mOff.toFixed(3)} ms over ${n} requests\n`);
  assert.ok(mDead < mOff * 1.5 + 0.5, `median with a dead collector ${mDead} ms vs ${mOff} ms without tracing`);
  // The spans were dropped (queue full) or failed, and counted.
  const m = (await httpRequest(`http://127.0.0.1:${dead.metricsPort}/metrics`)).text;
  const dropped = Number(/outrigger_trace_spans_total\{app_id="traced-agent",outcome="dropped"\} (\d+)/.exec(m)?.[1] ?? 0);
  assert.ok(dropped > 0, `spans dropped while the collector hangs:\n${m.split('\n').filter((l) => l.includes('spans')).join('\n')}`);
  void rawSidecar;
});

h.test('secrets never reach logs, spans or metrics; an HTTPEndpoint tools/call is audited by the caller', { skip }, async () => {
  // A secret from a local.file secret store rides in an HTTPEndpoint header, in a query string,
  // in a tool argument under a secret-looking key, in the client's Authorization header and in
  // a dapr-api-token. Debug logs, API logging, span logging (stdout) and export are all on.
  const SECRET = `sk-obs-${Math.random().toString(16).slice(2)}${Date.now()}`;
  const dir = h.tmpHome('outrigger-obs-secret-');
  fs.writeFileSync(path.join(dir, 'secrets.json'), JSON.stringify({ 'api-key': SECRET }));
  fs.mkdirSync(path.join(dir, 'res'));
  const app = h.procs.find((p) => p.name === 'mcp-server-app');
  fs.writeFileSync(path.join(dir, 'res', 'r.yaml'), `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: localsecrets
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: ${path.join(dir, 'secrets.json')}
---
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata:
  name: remote-mcp
spec:
  baseUrl: http://127.0.0.1:${app.port}
  headers:
  - name: X-Api-Key
    secretKeyRef:
      name: api-key
      key: api-key
auth:
  secretStore: localsecrets
`);
  const conf = writeConfig(dir, 'c', `tracing:
  samplingRate: "1"
  stdout: true
  otel:
    endpointAddress: 127.0.0.1:${receiver.port}
    protocol: http
    isSecure: false
logging:
  apiLogging:
    enabled: true
  mcpAudit:
    arguments: true`);
  const sc = await h.startSidecar({ appId: 'secret-agent', home, logLevel: 'debug', env: TRACE_ENV, extraArgs: ['--config', conf, '--resources-path', path.join(dir, 'res'), '--log-as-json'] });
  const { client } = await h.mcpClient(`${sc.url}/v1.0/invoke/remote-mcp/method/mcp?access_token=${SECRET}`, { headers: { authorization: `Bearer ${SECRET}` } });
  const r = await client.callTool({ name: 'echo', arguments: { message: 'visible', apiToken: SECRET } });
  assert.equal(r.content[0].text, 'Echo: visible');
  await client.close();
  await waitFor('external spans exported', () => receiver.spans.some((s) => s.service === 'secret-agent' && s.attrs['gen_ai.tool.name'] === 'echo'), { timeoutMs: 10000 });
  const metrics = (await httpRequest(`http://127.0.0.1:${sc.metricsPort}/metrics`)).text;
  assert.match(metrics, /outrigger_mcp_requests_total\{app_id="secret-agent",side="client",caller_app_id="secret-agent",target_app_id="remote-mcp",mcp_method="tools\/call",tool="echo",status="200"\} 1/);
  const log = sc.proc.output();
  const audit = log.split('\n').filter((l) => l.includes('"scope":"audit"')).map((l) => JSON.parse(l));
  assert.equal(audit.length, 1, JSON.stringify(audit));
  assert.deepEqual([audit[0].caller, audit[0].target, audit[0].tool, audit[0].outcome, audit[0].status], ['secret-agent', 'remote-mcp', 'echo', 'ok', 200]);
  assert.deepEqual(audit[0].arguments, { apiToken: '[REDACTED]', message: 'visible' });
  assert.ok(log.includes('"scope":"trace"'), 'tracing.stdout logs spans');
  assert.ok(!log.includes(SECRET), 'the secret is in no log line');
  assert.ok(!metrics.includes(SECRET), 'the secret is in no metric');
  const spans = JSON.stringify(receiver.spans.filter((s) => s.service === 'secret-agent').map(({ headers, ...s }) => s));
  assert.ok(!spans.includes(SECRET), 'the secret is in no span');
});

h.test('isSecure: spans go to a TLS collector whose certificate verifies, never to one that does not', { skip: skip || (!haveCommand('openssl') && 'no openssl CLI') }, async () => {
  const dir = h.tmpHome('outrigger-obs-tls-');
  const openssl = (args) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  };
  for (const ca of ['ca', 'other-ca'])
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', `/CN=${ca}`, '-keyout', `${ca}.key`, '-out', `${ca}.pem`]);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr']);
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'ext.cnf', '-out', 'server.pem']);
  const secure = await startReceiver({ key: fs.readFileSync(path.join(dir, 'server.key')), cert: fs.readFileSync(path.join(dir, 'server.pem')) });
  const conf = writeConfig(dir, 'tls', `tracing:\n  samplingRate: "1"\n  otel:\n    endpointAddress: localhost:${secure.port}\n    protocol: http`); // isSecure defaults to true
  const good = await h.startSidecar({ appId: 'tls-agent', home, extraArgs: ['--config', conf], env: { ...TRACE_ENV, OTEL_EXPORTER_OTLP_CERTIFICATE: path.join(dir, 'ca.pem') } });
  const bad = await h.startSidecar({ appId: 'tls-wrong-ca', home, extraArgs: ['--config', conf], env: { ...TRACE_ENV, OTEL_EXPORTER_OTLP_CERTIFICATE: path.join(dir, 'other-ca.pem') } });
  for (const sc of [good, bad]) assert.equal(await echoThrough(sc, 'tls'), 'Echo: tls');
  await waitFor('spans over TLS', () => secure.spans.some((s) => s.service === 'tls-agent' && s.attrs['gen_ai.tool.name'] === 'echo'), { timeoutMs: 10000 });
  await waitFor('failed export counted', async () => /outrigger_trace_spans_total\{app_id="tls-wrong-ca",outcome="failed"\} [1-9]/.test((await httpRequest(`http://127.0.0.1:${bad.metricsPort}/metrics`)).text), { timeoutMs: 10000 });
  assert.equal(secure.spans.filter((s) => s.service === 'tls-wrong-ca').length, 0);
  assert.match(bad.proc.output(), /exporting \d+ spans to localhost:\d+\/v1\/traces failed: TLS failure/);
});

h.test('an OPA denial is counted by layer and audited as denied', { skip }, async () => {
  const res = path.join(h.tmpHome('outrigger-obs-opa-'), 'res');
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
  - name: rego
    value: |
      package http
      import rego.v1
      default allow := true
      allow := false if {
          input.mcp.method == "tools/call"
          input.mcp.name == "whoami"
      }
`);
  fs.writeFileSync(path.join(res, 'config.yaml'), `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: guarded
spec:
  appHttpPipeline:
    handlers:
    - name: tool-policy
      type: middleware.http.opa
  logging:
    mcpAudit:
      enabled: true
`);
  const app = await h.startNodeApp('guarded-app', MCP_SERVER_APP);
  const guarded = await h.startSidecar({ appId: 'guarded-server', appPort: app.port, home, extraArgs: ['--resources-path', res, '--config', path.join(res, 'config.yaml'), '--log-as-json'] });
  const { client } = await h.mcpClient(`${agent.url}/v1.0/invoke/guarded-server/method/mcp`);
  assert.equal((await client.callTool({ name: 'echo', arguments: { message: 'ok' } })).content[0].text, 'Echo: ok');
  await assert.rejects(client.callTool({ name: 'whoami', arguments: {} }), /403|denied|Forbidden/i);
  await client.close();
  const m = (await httpRequest(`http://127.0.0.1:${guarded.metricsPort}/metrics`)).text;
  assert.match(m, /outrigger_mcp_denied_total\{app_id="guarded-server",layer="opa",caller_app_id="analyst-agent",target_app_id="guarded-server",mcp_method="tools\/call",tool="whoami"\} 1\n/);
  assert.match(m, /outrigger_mcp_requests_total\{app_id="guarded-server",side="server",caller_app_id="analyst-agent",target_app_id="guarded-server",mcp_method="tools\/call",tool="whoami",status="403"\} 1\n/);
  const audit = guarded.proc.output().split('\n').filter((l) => l.includes('"scope":"audit"')).map((l) => JSON.parse(l));
  assert.deepEqual(audit.map((a) => [a.tool, a.outcome, a.status]).sort(), [['echo', 'ok', 200], ['whoami', 'denied', 403]]);
});
