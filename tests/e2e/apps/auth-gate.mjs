#!/usr/bin/env node
// A "remote" server's front door: checks an API key header, then reverse-proxies to an upstream
// (server-everything), streaming both ways. Stands in for a hosted MCP server that wants a key.
//
//   APP_PORT=N UPSTREAM=http://127.0.0.1:M GATE_HEADER=x-api-key GATE_SECRET=... node apps/auth-gate.mjs
//   TLS_CERT=cert.pem TLS_KEY=key.pem: serve HTTPS instead of HTTP; with TLS_CLIENT_CA=ca.pem the
//   client must also present a certificate from that CA (its CN is reported as lastClientCN).
//
// A request without the right key gets 401 {"error":"missing or wrong key"}. GET /gate/stats
// answers {"accepted":n,"rejected":n,"lastHost":"...","lastPath":"..."} (no key needed).
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const PORT = Number(process.env.APP_PORT ?? process.env.PORT ?? 0);
const UPSTREAM = new URL(process.env.UPSTREAM);
const HEADER = (process.env.GATE_HEADER ?? 'x-api-key').toLowerCase();
const SECRET = process.env.GATE_SECRET ?? '';
const stats = { accepted: 0, rejected: 0, lastHost: '', lastPath: '', lastHeaders: {}, lastClientCN: '' };

function handler(req, res) {
  if (req.url === '/gate/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(stats));
    return;
  }
  if (!SECRET || req.headers[HEADER] !== SECRET) {
    stats.rejected++;
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: 'missing or wrong key' }));
    return;
  }
  stats.accepted++;
  stats.lastClientCN = req.socket.getPeerCertificate?.()?.subject?.CN ?? '';
  stats.lastHost = req.headers.host ?? '';
  stats.lastPath = req.url;
  stats.lastHeaders = { ...req.headers, [HEADER]: '(checked)' };
  const headers = { ...req.headers, host: UPSTREAM.host };
  delete headers[HEADER];
  const up = http.request(
    { host: UPSTREAM.hostname, port: UPSTREAM.port, method: req.method, path: req.url, headers },
    (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      res.flushHeaders();
      ur.pipe(res);
    },
  );
  up.on('error', (e) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(String(e.message));
  });
  req.pipe(up);
}

const server = process.env.TLS_CERT
  ? https.createServer(
      {
        cert: fs.readFileSync(process.env.TLS_CERT),
        key: fs.readFileSync(process.env.TLS_KEY),
        ...(process.env.TLS_CLIENT_CA
          ? { requestCert: true, rejectUnauthorized: true, ca: fs.readFileSync(process.env.TLS_CLIENT_CA) }
          : {}),
      },
      handler,
    )
  : http.createServer(handler);
server.listen(PORT, '127.0.0.1');
