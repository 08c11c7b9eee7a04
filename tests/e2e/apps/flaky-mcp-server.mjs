#!/usr/bin/env node
// A scripted, misbehaving MCP server for the resiliency e2e tests. Official SDK (McpServer) in
// stateless Streamable HTTP mode (a new server and transport per request, JSON responses), so any
// request can be repeated by a proxy without session state.
//
//   node apps/flaky-mcp-server.mjs [--port N]      (port: --port, else $APP_PORT, else $PORT)
//
// POST /mcp          JSON-RPC. Before the SDK sees it, the current fault script may answer instead.
// GET|DELETE /mcp    405 (stateless server).
// POST /control      JSON {fault, count, methods?}: the next `count` POST /mcp requests whose
//                    JSON-RPC method is in `methods` (any method when absent) get `fault`:
//                      "503"     -> 503 with a small JSON body
//                      "hang"    -> no answer at all (the socket stays open until the peer leaves)
//                      "reset"   -> the connection is reset (TCP RST) without a response
//                      "partial" -> 200 head and half of a JSON-RPC result, then a reset
//                      "slow-sse" -> 200 text/event-stream: 10 progress notifications 300 ms
//                                   apart, then the JSON-RPC result {"events": 10} (3 s in all)
//                    {fault: "none"} clears the script. Answers {"ok": true}.
// GET /stats         JSON {total, byMethod: {<json-rpc method>: n}}: POST /mcp requests received
//                    (counted before any fault), so tests can tell whether a request was repeated.
// POST /stats/reset  zeroes the counters.
// GET /healthz       200 "ok".
// Tools: echo {message} -> text "Echo: <message>".
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

const argv = process.argv.slice(2);
const portArg = argv.indexOf('--port');
const PORT = Number(portArg >= 0 ? argv[portArg + 1] : process.env.APP_PORT ?? process.env.PORT ?? 0);

let script = { fault: 'none', count: 0, methods: null };
let stats = { total: 0, byMethod: {} };

function buildServer() {
  const server = new McpServer({ name: 'outrigger-e2e-flaky-mcp-server', version: '1.0.0' }, { capabilities: { tools: {} } });
  server.registerTool('echo', { description: 'Echo a message', inputSchema: { message: z.string() } }, async ({ message }) => ({
    content: [{ type: 'text', text: `Echo: ${message}` }],
  }));
  return server;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function json(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Applies the fault script to a request with JSON-RPC `method`; true when it answered. */
function fault(req, res, method) {
  if (script.count <= 0 || script.fault === 'none') return false;
  if (script.methods && !script.methods.includes(method)) return false;
  script.count--;
  switch (script.fault) {
    case '503':
      json(res, 503, { error: 'scripted 503', method });
      return true;
    case 'hang':
      return true; // never answered; node closes the socket when the peer does
    case 'reset':
      req.socket.resetAndDestroy();
      return true;
    case 'partial':
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"ec');
      setTimeout(() => req.socket.resetAndDestroy(), 100);
      return true;
    case 'slow-sse': {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let i = 0;
      const id = JSON.parse(JSON.stringify(req.rpcId ?? null));
      const tick = setInterval(() => {
        i++;
        const note = { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: i, total: 10 } };
        res.write(`event: message\ndata: ${JSON.stringify(note)}\n\n`);
        if (i === 10) {
          clearInterval(tick);
          res.end(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, result: { events: 10 } })}\n\n`);
        }
      }, 300);
      res.on('close', () => clearInterval(tick));
      return true;
    }
    default:
      return false;
  }
}

const httpServer = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/healthz') return json(res, 200, { ok: true });
    if (url.pathname === '/stats' && req.method === 'GET') return json(res, 200, stats);
    if (url.pathname === '/stats/reset' && req.method === 'POST') {
      stats = { total: 0, byMethod: {} };
      return json(res, 200, { ok: true });
    }
    if (url.pathname === '/control' && req.method === 'POST') {
      const c = JSON.parse(await readBody(req));
      script = { fault: c.fault ?? 'none', count: c.count ?? 0, methods: c.methods ?? null };
      return json(res, 200, { ok: true });
    }
    if (url.pathname !== '/mcp') return json(res, 404, { error: 'not found' });
    if (req.method !== 'POST') return json(res, 405, { jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null });
    const text = await readBody(req);
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      return json(res, 400, { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null });
    }
    const method = Array.isArray(body) ? body[0]?.method : body.method;
    stats.total++;
    stats.byMethod[method] = (stats.byMethod[method] ?? 0) + 1;
    req.rpcId = Array.isArray(body) ? body[0]?.id : body.id;
    if (fault(req, res, method)) return;
    const server = buildServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => {
      transport.close();
      server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  } catch (err) {
    if (!res.headersSent) json(res, 500, { error: String(err) });
  }
});

httpServer.listen(PORT, '127.0.0.1', () => {
  console.log(`[flaky-mcp-server] listening on 127.0.0.1:${httpServer.address().port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
