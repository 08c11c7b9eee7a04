#!/usr/bin/env node
// MCP server used by the e2e suite. Official SDK (McpServer) on a plain node:http server.
//
//   node apps/mcp-server.mjs [--sse] [--port N] [--no-host-check]
//
// Port: --port, else $APP_PORT, else $PORT. Listens on 127.0.0.1 only.
// Streamable HTTP (default): stateful sessions at /mcp (POST, GET, DELETE).
// Legacy HTTP+SSE (--sse or MCP_TRANSPORT=sse): GET /sse, POST /message?sessionId=...
// GET /healthz -> 200 "ok" in both modes.
// E2E_LOG_REQUESTS=1: prints one stdout line per request received, before any other handling:
//   [mcp-server] request <METHOD> <url as received> caller=<dapr-caller-app-id or ->
// (tests use it to prove that a refused call never reached the server).
//
// Host check (on by default, like the SDK's createMcpExpressApp on localhost): the Host header's
// hostname must be localhost, 127.0.0.1 or [::1], else 403. A proxy must therefore send a Host
// the app accepts (its own address, or the loopback Host the client used).
//
// Tools:
//   echo {message}                  -> text "Echo: <message>"
//   slow_progress {count, intervalMs} -> `count` notifications/progress spaced by intervalMs (default
//                                    5 x 200 ms); each message is JSON {"serverTime": Date.now(), "i": n}.
//                                    Result text: JSON {"serverTime": <time of result>, "count": n}.
//   big {bytes}                     -> one text content block of exactly `bytes` ASCII bytes (default
//                                    8 MiB) made by bigText() in big-text.mjs.
//   whoami                          -> text JSON {headers, rawHeaders, url}: headers = the SDK's
//                                    extra.requestInfo.headers (duplicates joined by ", "),
//                                    rawHeaders = node's req.rawHeaders ([name, value, ...]).
//   notify {text, delayMs}          -> after delayMs (default 0) sends notifications/message
//                                    (level info, logger "notify", data text) NOT related to the
//                                    request, so the SDK routes it to the standalone GET SSE stream.
//                                    Result says whether a GET stream was open ("sent").
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { AsyncLocalStorage } from 'node:async_hooks';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { bigText } from './big-text.mjs';

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const opt = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const MODE = flag('--sse') || process.env.MCP_TRANSPORT === 'sse' ? 'sse' : 'streamable';
const PORT = Number(opt('--port') ?? process.env.APP_PORT ?? process.env.PORT ?? 0);
const HOST_CHECK = !flag('--no-host-check');
const LOG_REQUESTS = process.env.E2E_LOG_REQUESTS === '1';

const als = new AsyncLocalStorage();

function buildServer() {
  const server = new McpServer(
    { name: 'outrigger-e2e-mcp-server', version: '1.0.0' },
    { capabilities: { logging: {}, tools: {} } },
  );
  server.registerTool(
    'echo',
    { description: 'Echo a message', inputSchema: { message: z.string() } },
    async ({ message }) => ({ content: [{ type: 'text', text: `Echo: ${message}` }] }),
  );
  server.registerTool(
    'slow_progress',
    {
      description: 'Send progress notifications spaced in time, then return',
      inputSchema: { count: z.number().int().min(1).max(100).optional(), intervalMs: z.number().int().min(0).max(5000).optional() },
    },
    async ({ count = 5, intervalMs = 200 }, extra) => {
      const token = extra._meta?.progressToken;
      for (let i = 1; i <= count; i++) {
        if (token !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken: token, progress: i, total: count, message: JSON.stringify({ serverTime: Date.now(), i }) },
          });
        }
        await new Promise((r) => setTimeout(r, intervalMs));
      }
      return { content: [{ type: 'text', text: JSON.stringify({ serverTime: Date.now(), count }) }] };
    },
  );
  server.registerTool(
    'big',
    { description: 'Return a large text result', inputSchema: { bytes: z.number().int().min(0).max(64 * 1024 * 1024).optional() } },
    async ({ bytes = 8 * 1024 * 1024 }) => ({ content: [{ type: 'text', text: bigText(bytes) }] }),
  );
  server.registerTool('whoami', { description: 'Return the HTTP request headers this server saw' }, async (extra) => {
    const ctx = als.getStore();
    const info = extra.requestInfo ?? {};
    return {
      content: [{ type: 'text', text: JSON.stringify({ headers: info.headers ?? {}, rawHeaders: ctx?.rawHeaders ?? [], url: ctx?.url ?? null }) }],
    };
  });
  server.registerTool(
    'notify',
    {
      description: 'Send a notifications/message on the standalone (GET) stream',
      inputSchema: { text: z.string().optional(), delayMs: z.number().int().min(0).max(10000).optional() },
    },
    async ({ text = 'hello', delayMs = 0 }) => {
      const send = () =>
        server.server.notification({ method: 'notifications/message', params: { level: 'info', logger: 'notify', data: text } });
      if (delayMs > 0) {
        setTimeout(() => send().catch(() => {}), delayMs);
        return { content: [{ type: 'text', text: 'scheduled' }] };
      }
      await send();
      return { content: [{ type: 'text', text: 'sent' }] };
    },
  );
  return server;
}

function hostAllowed(req) {
  if (!HOST_CHECK) return true;
  const h = req.headers.host;
  if (!h) return false;
  let name;
  try {
    name = new URL(`http://${h}`).hostname;
  } catch {
    return false;
  }
  return name === 'localhost' || name === '127.0.0.1' || name === '[::1]';
}

function sendJson(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
const rpcError = (res, status, code, message) => sendJson(res, status, { jsonrpc: '2.0', error: { code, message }, id: null });

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// ---- Streamable HTTP (stateful) ----
const sessions = new Map(); // sessionId -> transport

async function handleStreamable(req, res) {
  const sid = req.headers['mcp-session-id'];
  if (req.method === 'POST') {
    const raw = await readBody(req);
    let body;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return rpcError(res, 400, -32700, 'Parse error');
    }
    if (sid) {
      const t = sessions.get(sid);
      if (!t) return rpcError(res, 404, -32001, 'Session not found');
      return t.handleRequest(req, res, body);
    }
    if (!isInitializeRequest(body)) return rpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
    const server = buildServer();
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => sessions.set(id, transport),
      onsessionclosed: (id) => sessions.delete(id),
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await server.connect(transport);
    return transport.handleRequest(req, res, body);
  }
  if (req.method === 'GET' || req.method === 'DELETE') {
    if (!sid) return rpcError(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
    const t = sessions.get(sid);
    if (!t) return rpcError(res, 404, -32001, 'Session not found');
    return t.handleRequest(req, res);
  }
  res.writeHead(405, { allow: 'GET, POST, DELETE' }).end();
}

// ---- Legacy HTTP+SSE ----
const sseSessions = new Map(); // sessionId -> SSEServerTransport

async function handleSseGet(req, res) {
  const transport = new SSEServerTransport('/message', res);
  sseSessions.set(transport.sessionId, transport);
  res.on('close', () => sseSessions.delete(transport.sessionId));
  const server = buildServer();
  await server.connect(transport); // writes the `endpoint` event
}

async function handleSsePost(req, res, url) {
  const t = sseSessions.get(url.searchParams.get('sessionId') ?? '');
  if (!t) return rpcError(res, 404, -32001, 'Session not found');
  return t.handlePostMessage(req, res);
}

const httpServer = http.createServer((req, res) => {
  if (LOG_REQUESTS) console.log(`[mcp-server] request ${req.method} ${req.url} caller=${req.headers['dapr-caller-app-id'] ?? '-'}`);
  const url = new URL(req.url, 'http://placeholder');
  if (url.pathname === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    return;
  }
  if (!hostAllowed(req)) return rpcError(res, 403, -32000, `Invalid Host: ${req.headers.host}`);
  const ctx = { rawHeaders: req.rawHeaders, url: req.url };
  als.run(ctx, () => {
    let p;
    if (MODE === 'streamable' && url.pathname === '/mcp') p = handleStreamable(req, res);
    else if (MODE === 'sse' && url.pathname === '/sse' && req.method === 'GET') p = handleSseGet(req, res);
    else if (MODE === 'sse' && url.pathname === '/message' && req.method === 'POST') p = handleSsePost(req, res, url);
    else return rpcError(res, 404, -32601, `no route ${req.method} ${url.pathname}`);
    Promise.resolve(p).catch((err) => {
      console.error('[mcp-server] handler error:', err);
      if (!res.headersSent) rpcError(res, 500, -32603, 'Internal server error');
      else res.destroy();
    });
  });
});

httpServer.listen(PORT, '127.0.0.1', () => {
  console.log(`[mcp-server] mode=${MODE} listening on http://127.0.0.1:${httpServer.address().port}${MODE === 'sse' ? '/sse' : '/mcp'}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
