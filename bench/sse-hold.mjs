#!/usr/bin/env node
// sse-hold.mjs — hold many idle SSE streams open, for the per-stream memory benchmark.
//
//   node bench/sse-hold.mjs app    --port P
//       An upstream app. GET /sse answers 200 text/event-stream, sends one event, then holds the
//       stream open without further writes. GET /count answers {"open":n,"total":m} (streams open
//       now / ever opened). Prints {"listening":P} on stdout when ready.
//
//   node bench/sse-hold.mjs client --port P [--host 127.0.0.1] [--path /sse] [-n N]
//                                  [--concurrency C] [--timeout-s S]
//       Opens N streams with raw `net` sockets (a few hundred bytes of client state each), one HTTP/1.1
//       GET per socket with `Accept: text/event-stream`, at most C waiting for their first event at a
//       time. A stream counts as open only when the status is 200, the content type is
//       text/event-stream and a complete first event (ending in a blank line) has arrived; chunked
//       bodies are decoded so a proxy may re-chunk freely. Prints one JSON line when every stream has
//       either opened or failed, then holds them:
//         {"phase":"opened","target":N,"open":n,"failed":f,"ms":t,"errors":{...}}
//       SIGUSR2 prints {"phase":"status","open":n,"closed_after_open":c,...}; SIGTERM/SIGINT closes
//       everything and exits 0. Exits 2 on its own after --hold-s seconds (default 600), so it is
//       always bounded in time.
import net from 'node:net';
import http from 'node:http';

function parseArgs(argv) {
  const o = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('-')) {
      const k = a.replace(/^-+/, '');
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) { o[k] = true; } else { o[k] = v; i++; }
    } else {
      o._.push(a);
    }
  }
  return o;
}

const args = parseArgs(process.argv.slice(2));
const mode = args._[0];
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

if (mode === 'app') {
  runApp();
} else if (mode === 'client') {
  runClient();
} else {
  process.stderr.write('usage: sse-hold.mjs app --port P | client --port P [--host H] [--path /sse] [-n N] [--concurrency C] [--timeout-s S] [--hold-s S]\n');
  process.exit(64);
}

function runApp() {
  const port = Number(args.port ?? 0);
  let open = 0;
  let total = 0;
  const EVENT = 'id: 1\nevent: ready\ndata: {"hold":true}\n\n';
  const server = http.createServer((req, res) => {
    const path = req.url.split('?')[0];
    if (req.method === 'GET' && path === '/sse') {
      open++;
      total++;
      res.on('close', () => { open--; });
      res.writeHead(200, {
        'Content-Type': 'text/event-stream',
        'Cache-Control': 'no-cache',
      });
      res.write(EVENT);
      return; // hold: never end
    }
    if (req.method === 'GET' && path === '/count') {
      const body = JSON.stringify({ open, total });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': 9 });
    res.end('not found');
  });
  // Streams are meant to stay idle; no server-side timeout may close them.
  server.requestTimeout = 0;
  server.headersTimeout = 10000;
  server.keepAliveTimeout = 5000;
  server.timeout = 0;
  server.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => {
    out({ listening: server.address().port });
  });
  const stop = () => { server.closeAllConnections?.(); server.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function runClient() {
  const host = String(args.host ?? '127.0.0.1');
  const port = Number(args.port);
  const path = String(args.path ?? '/sse');
  const target = Number(args.n ?? 10000);
  const concurrency = Number(args.concurrency ?? 200);
  const timeoutMs = Number(args['timeout-s'] ?? 10) * 1000;
  const holdMs = Number(args['hold-s'] ?? 600) * 1000;
  if (!port || !(target > 0)) { process.stderr.write('client: --port and -n required\n'); process.exit(64); }

  const request = Buffer.from(
    `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nAccept: text/event-stream\r\n` +
    'Cache-Control: no-cache\r\nUser-Agent: outrigger-sse-hold\r\n\r\n', 'latin1');

  const sockets = [];         // sockets that opened (saw the first event)
  const errors = {};          // reason -> count
  let started = 0, pending = 0, opened = 0, failed = 0, closedAfterOpen = 0, reported = false;
  const t0 = Date.now();

  const fail = (s, reason) => {
    if (s.state === 'done' || s.state === 'failed') return;
    s.state = 'failed';
    failed++;
    pending--;
    errors[reason] = (errors[reason] ?? 0) + 1;
    clearTimeout(s.timer);
    s.destroy();
    pump();
  };

  // Returns true once a complete SSE event (a line "data:..." followed by a blank line) is in `text`.
  const hasEvent = (text) => /(^|\n)data:[^\n]*\n(?:[^\n]+\n)*\r?\n/.test(text.replace(/\r\n/g, '\n'));

  // Minimal chunked decoder: returns the decoded prefix available so far.
  const dechunk = (buf) => {
    let i = 0; const parts = [];
    for (;;) {
      const nl = buf.indexOf('\r\n', i);
      if (nl < 0) break;
      const size = parseInt(buf.slice(i, nl).split(';')[0].trim(), 16);
      if (Number.isNaN(size)) return null;
      if (size === 0) { parts.push(''); break; }
      const start = nl + 2;
      const avail = Math.min(size, buf.length - start);
      parts.push(buf.slice(start, start + avail));
      if (avail < size || buf.length < start + size + 2) break;
      i = start + size + 2;
    }
    return parts.join('');
  };

  const onData = function (chunk) {
    const s = this;
    if (s.state !== 'wait') return;          // after the first event: ignore (idle stream)
    s.buf += chunk.toString('latin1');
    if (s.buf.length > 65536) return fail(s, 'first_response_too_large');
    const he = s.buf.indexOf('\r\n\r\n');
    if (he < 0) return;
    const head = s.buf.slice(0, he).toLowerCase();
    const status = /^http\/1\.[01] (\d{3})/.exec(head);
    if (!status) return fail(s, 'bad_status_line');
    if (status[1] !== '200') return fail(s, 'status_' + status[1]);
    if (!/\r\ncontent-type:\s*text\/event-stream/.test(head)) return fail(s, 'not_event_stream');
    let body = s.buf.slice(he + 4);
    if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) {
      body = dechunk(body);
      if (body === null) return fail(s, 'bad_chunking');
    }
    if (!hasEvent(body)) return;
    s.state = 'done';
    s.buf = '';
    clearTimeout(s.timer);
    s.timer = null;
    pending--;
    opened++;
    sockets.push(s);
    pump();
  };

  const onClose = function () {
    const s = this;
    if (s.state === 'done') { s.state = 'closed'; closedAfterOpen++; return; }
    fail(s, 'closed_before_event');
  };

  const start = () => {
    started++;
    pending++;
    const s = net.connect({ host, port });
    s.state = 'wait';
    s.buf = '';
    s.setNoDelay(true);
    s.timer = setTimeout(() => fail(s, 'timeout_first_event'), timeoutMs);
    s.on('connect', () => s.write(request));
    s.on('data', onData);
    s.on('error', (e) => { if (s.state === 'wait') fail(s, 'error_' + (e.code ?? 'unknown')); });
    s.on('close', onClose);
  };

  function pump() {
    while (started < target && pending < concurrency) start();
    if (!reported && opened + failed === target) {
      reported = true;
      out({ phase: 'opened', target, open: opened, failed, ms: Date.now() - t0, errors });
    }
  }

  const status = () => out({
    phase: 'status', target, open: opened - closedAfterOpen, closed_after_open: closedAfterOpen,
    failed, errors, rss_kb: Math.round(process.memoryUsage().rss / 1024),
  });
  process.on('SIGUSR2', status);
  const stop = () => { for (const s of sockets) s.destroy(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  setTimeout(() => { status(); process.exit(2); }, holdMs).unref();
  // keep the process alive while holding, even if every socket failed
  setInterval(() => {}, 1 << 30);
  pump();
}
