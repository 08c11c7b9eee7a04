#!/usr/bin/env node
// TEST DOUBLE, not the product: a minimal Node stand-in for `outrigger sidecar` / `outrigger run`
// that follows the same CLI contract, so the e2e suite itself can be checked end to end before
// (or independently of) the C binary:
//
//   OUTRIGGER_BIN=tests/e2e/lib/fake-outrigger.mjs npm test
//
// It implements just what the suite asserts (Dapr invoke API forms, header stamping/stripping,
// error bodies, streaming pass-through, healthz, metadata, run). Its registry is JSON files under
// $OUTRIGGER_HOME/fake-registry/ (the real sidecar uses nameresolution.db). Sidecar-to-sidecar
// hop: plain HTTP to the target's --dapr-internal-port.
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te', 'trailer', 'proxy-authorization', 'proxy-authenticate', 'host']);
// FAKE_OUTRIGGER_BUG=<name> injects one known proxy bug, to check that the suite catches it:
// buffer | no-strip | host | error-body | keep-app-id | clean-truncate | drop-query
const BUG = process.env.FAKE_OUTRIGGER_BUG ?? '';
const STAMPED = new Set(['dapr-caller-app-id', 'dapr-caller-namespace', 'dapr-callee-app-id']);

function parseFlags(args) {
  const f = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      f._rest = args.slice(i + 1);
      break;
    }
    if (a.startsWith('--')) f[a.slice(2)] = args[++i];
  }
  return f;
}

const home = () => process.env.OUTRIGGER_HOME || path.join(os.homedir(), '.outrigger');
const regFile = (ns, id) => path.join(home(), 'fake-registry', `${ns}.${id}.json`);

function errorJson(res, status, errorCode, message) {
  if (BUG === 'error-body') return res.writeHead(502, { 'content-type': 'text/plain' }).end(`${errorCode}: ${message}`);
  const body = JSON.stringify({ errorCode, message });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Forward req to 127.0.0.1:port + path with extra header pairs; pipe the answer back. */
function forward(req, res, port, pathAndQuery, extraPairs, onConnectError, { keepStamped = false } = {}) {
  const pairs = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const k = req.rawHeaders[i].toLowerCase();
    if (HOP.has(k) || (k === 'dapr-app-id' && BUG !== 'keep-app-id') || (STAMPED.has(k) && !keepStamped && BUG !== 'no-strip')) continue;
    pairs.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
  }
  pairs.push(['host', BUG === 'host' ? 'mcp-server' : `127.0.0.1:${port}`], ...extraPairs);
  if (req.headers['content-length'] === undefined && req.headers['transfer-encoding']) pairs.push(['transfer-encoding', 'chunked']);
  const up = http.request({ host: '127.0.0.1', port, method: req.method, path: pathAndQuery, headers: pairs, agent: false }, (ures) => {
    const h = {};
    for (const [k, v] of Object.entries(ures.headers)) if (!HOP.has(k) && k !== 'content-length') h[k] = v;
    if (BUG === 'buffer') {
      const chunks = [];
      ures.on('data', (c) => chunks.push(c));
      ures.on('end', () => res.writeHead(ures.statusCode, h).end(Buffer.concat(chunks)));
      ures.on('aborted', () => res.destroy());
      return;
    }
    res.writeHead(ures.statusCode, h);
    res.flushHeaders();
    ures.on('data', (c) => res.write(c));
    ures.on('end', () => res.end());
    ures.on('aborted', () => (BUG === 'clean-truncate' ? res.end() : res.destroy()));
    ures.on('error', () => res.destroy());
  });
  up.on('error', (err) => (res.headersSent ? res.destroy() : onConnectError(err)));
  req.pipe(up);
  res.on('close', () => up.destroy());
}

function sidecar(f) {
  const appId = f['app-id'];
  const ns = f.namespace || process.env.NAMESPACE || 'default';
  const appPort = f['app-port'] ? Number(f['app-port']) : 0;
  const httpPort = Number(f['dapr-http-port'] || 3500);
  const internalPort = Number(f['dapr-internal-port'] || 0);

  const internal = http.createServer((req, res) => {
    if (!appPort) return errorJson(res, 500, 'ERR_DIRECT_INVOKE', `failed to invoke, id: ${appId}, err: app channel is not initialized`);
    forward(req, res, appPort, req.url, [], (err) => errorJson(res, 500, 'ERR_DIRECT_INVOKE', `failed to invoke, id: ${appId}, err: ${err.message}`), {
      keepStamped: true, // stamped by the calling sidecar on the internal hop
    });
  });

  const api = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    if (u.pathname === '/v1.0/healthz' && req.method === 'GET') return res.writeHead(204).end();
    if (u.pathname === '/v1.0/metadata' && req.method === 'GET') {
      const body = JSON.stringify({ id: appId, runtimeVersion: 'fake' });
      return res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    }
    let target;
    let method;
    if (req.headers['dapr-app-id']) {
      target = req.headers['dapr-app-id'];
      method = u.pathname.replace(/^\/+/, '');
    } else {
      const m = /^\/v1\.0\/invoke\/([^/]+)\/method\/(.*)$/.exec(u.pathname);
      if (m) [, target, method] = [null, decodeURIComponent(m[1]), m[2]];
    }
    if (!target) return errorJson(res, 404, 'ERR_DIRECT_INVOKE', 'failed getting app id either from the URL path or the header dapr-app-id');
    const [tid, tns = ns] = target.split('.');
    const pathAndQuery = `/${method}${BUG === 'drop-query' ? '' : u.search}`;
    const stamp = [['dapr-caller-app-id', appId], ['dapr-caller-namespace', ns], ['dapr-callee-app-id', tid]];
    const fail = (err) => errorJson(res, 500, 'ERR_DIRECT_INVOKE', `failed to invoke, id: ${target}, err: ${err}`);
    if (tid === appId && tns === ns) {
      if (!appPort) return fail('app channel is not initialized');
      return forward(req, res, appPort, pathAndQuery, stamp, (e) => fail(e.message));
    }
    let entry;
    try {
      entry = JSON.parse(fs.readFileSync(regFile(tns, tid), 'utf8'));
    } catch {
      return fail(`app id ${tid} not found in namespace ${tns}`);
    }
    forward(req, res, entry.internalPort, pathAndQuery, stamp, (e) => fail(e.message));
  });

  internal.listen(internalPort, '127.0.0.1', () => {
    fs.mkdirSync(path.dirname(regFile(ns, appId)), { recursive: true });
    fs.writeFileSync(regFile(ns, appId), JSON.stringify({ internalPort: internal.address().port, pid: process.pid }));
    api.listen(httpPort, '127.0.0.1', () => console.log(`fake sidecar ${appId} http=${httpPort} internal=${internal.address().port} app=${appPort || '-'}`));
  });
  const stop = () => {
    try {
      fs.rmSync(regFile(ns, appId));
    } catch {
      /* already gone */
    }
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function run(f) {
  const cmd = f._rest ?? [];
  if (!cmd.length) {
    console.error('usage: run --app-id ID [--app-port N] [--dapr-http-port N] -- CMD ARGS...');
    process.exit(2);
  }
  const httpPort = f['dapr-http-port'] || '3500';
  const scArgs = ['sidecar', '--app-id', f['app-id'], '--dapr-http-port', httpPort];
  if (f['app-port']) scArgs.push('--app-port', f['app-port']);
  const sc = spawn(process.execPath, [fileURLToPath(import.meta.url), ...scArgs], { stdio: ['ignore', 'inherit', 'inherit'] });
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${httpPort}/v1.0/healthz`);
      if (r.status === 204) break;
    } catch {
      /* not yet */
    }
    if (i > 100) {
      sc.kill();
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const env = { ...process.env, APP_ID: f['app-id'], DAPR_HTTP_PORT: httpPort, DAPR_HTTP_ENDPOINT: `http://127.0.0.1:${httpPort}` };
  if (f['app-port']) env.APP_PORT = f['app-port'];
  const app = spawn(cmd[0], cmd.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = (stream, out) => {
    let buf = '';
    stream.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        out.write(`== APP == ${buf.slice(0, i + 1)}`);
        buf = buf.slice(i + 1);
      }
    });
  };
  prefix(app.stdout, process.stdout);
  prefix(app.stderr, process.stderr);
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => app.kill(sig));
  app.on('exit', (code, signal) => {
    sc.kill('SIGTERM');
    sc.on('exit', () => process.exit(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
  });
}

const [sub, ...rest] = process.argv.slice(2);
if (sub === 'sidecar') sidecar(parseFlags(rest));
else if (sub === 'run') run(parseFlags(rest));
else {
  console.error('usage: fake-outrigger.mjs sidecar|run ...');
  process.exit(2);
}
