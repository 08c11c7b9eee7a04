#!/usr/bin/env node
// Plain node:http app for the proxy's error paths and header/stream checks.
//
//   node apps/raw-app.mjs [--port N]          (port: --port, else $APP_PORT, else $PORT; 127.0.0.1 only)
//
// Routes (any method unless noted):
//   /echo[/...]           200 JSON {method, path, query, url, headers, rawHeaders, body, bodyLength}
//                         (query = raw query string without "?", headers = node's lower-cased
//                         req.headers, rawHeaders = [name, value, ...] as received, body = UTF-8 text)
//   /status/<n>           status n, header x-raw-app: status, JSON body {"status":n,"from":"raw-app"}
//                         (no body for 1xx/204/304)
//   /close-mid-stream     200 chunked: writes 3 chunks of 1 KiB, then destroys the socket without the
//                         terminating chunk
//   /sse-ticks?count=N&intervalMs=M   text/event-stream, N events (default 10) every M ms (default
//                         100): `event: tick` / `id: i` / `data: {"i":i,"t":Date.now()}`, then ends
//   /env                  200 JSON of APP_ID, APP_PORT, DAPR_HTTP_PORT, DAPR_HTTP_ENDPOINT,
//                         DAPR_GRPC_PORT, DAPR_METRICS_PORT, pid
//   /healthz              200 "ok"
//   anything else         404 JSON {"error":"no route","path":...}
//
// E2E_LOG_REQUESTS=1: prints one stdout line per request received, before any other handling:
//   [raw-app] request <METHOD> <url as received> caller=<dapr-caller-app-id or ->
import http from 'node:http';

const argv = process.argv.slice(2);
const pi = argv.indexOf('--port');
const PORT = Number(pi >= 0 ? argv[pi + 1] : (process.env.APP_PORT ?? process.env.PORT ?? 0));

function json(res, status, obj, extra = {}) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const LOG_REQUESTS = process.env.E2E_LOG_REQUESTS === '1';

const server = http.createServer(async (req, res) => {
  if (LOG_REQUESTS) console.log(`[raw-app] request ${req.method} ${req.url} caller=${req.headers['dapr-caller-app-id'] ?? '-'}`);
  const q = req.url.indexOf('?');
  const path = q >= 0 ? req.url.slice(0, q) : req.url;
  const query = q >= 0 ? req.url.slice(q + 1) : '';
  const params = new URLSearchParams(query);
  try {
    if (path === '/echo' || path.startsWith('/echo/')) {
      const body = await readBody(req);
      return json(res, 200, {
        method: req.method,
        path,
        query,
        url: req.url,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: body.toString('utf8'),
        bodyLength: body.length,
      });
    }
    const m = /^\/status\/(\d{3})$/.exec(path);
    if (m) {
      await readBody(req);
      const status = Number(m[1]);
      if (status < 200 || status === 204 || status === 304) {
        res.writeHead(status, { 'x-raw-app': 'status' }).end();
        return;
      }
      return json(res, status, { status, from: 'raw-app' }, { 'x-raw-app': 'status' });
    }
    if (path === '/close-mid-stream') {
      await readBody(req);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let n = 0;
      const tick = () => {
        if (n++ < 3) {
          res.write(Buffer.alloc(1024, 0x61 + n));
          setTimeout(tick, 50);
        } else {
          res.socket?.destroy();
        }
      };
      tick();
      return;
    }
    if (path === '/sse-ticks') {
      const count = Number(params.get('count') ?? 10);
      const intervalMs = Number(params.get('intervalMs') ?? 100);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let i = 0;
      const timer = setInterval(() => {
        i++;
        res.write(`event: tick\nid: ${i}\ndata: ${JSON.stringify({ i, t: Date.now() })}\n\n`);
        if (i >= count) {
          clearInterval(timer);
          res.end();
        }
      }, intervalMs);
      res.on('close', () => clearInterval(timer));
      return;
    }
    if (path === '/env') {
      const e = process.env;
      return json(res, 200, {
        APP_ID: e.APP_ID ?? null,
        APP_PORT: e.APP_PORT ?? null,
        DAPR_HTTP_PORT: e.DAPR_HTTP_PORT ?? null,
        DAPR_HTTP_ENDPOINT: e.DAPR_HTTP_ENDPOINT ?? null,
        DAPR_GRPC_PORT: e.DAPR_GRPC_PORT ?? null,
        DAPR_METRICS_PORT: e.DAPR_METRICS_PORT ?? null,
        pid: process.pid,
      });
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    await readBody(req);
    return json(res, 404, { error: 'no route', path });
  } catch (err) {
    console.error('[raw-app] error:', err);
    if (!res.headersSent) json(res, 500, { error: String(err) });
    else res.destroy();
  }
});

server.listen(PORT, '127.0.0.1', () => {
  console.log(`[raw-app] listening on http://127.0.0.1:${server.address().port} pid=${process.pid}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
