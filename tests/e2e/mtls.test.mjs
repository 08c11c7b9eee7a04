// Workload identity and mTLS between sidecars (issue 3), against real sidecars and a real sentry:
//   1. the MCP path works with mTLS on (the default) and the app's dapr-caller-app-id comes from
//      the caller's certificate, not from a header;
//   2. the internal port refuses plaintext, TLS 1.2, no client certificate, a certificate from
//      another CA, an expired / not-yet-valid one, a malformed or doubled SPIFFE ID, a CA
//      certificate — while the same kind of certificate with a good ID and dates is served (the
//      positive control), and the sidecar keeps serving afterwards;
//   3. a peer presenting a valid SVID for app x where the caller resolved app y is refused;
//   4. with a 20 s workload TTL, continuous calls for 60 s see no failure while the served
//      certificate changes at least twice;
//   5. a JWT SVID from `outrigger sentry jwt` verifies with npm `jose` against the sentry's JWKS for
//      its audience only.
//
// Certificates for (2) are made with the openssl CLI in a temporary folder. The "valid" ones are
// signed with the sentry's issuer key from <home>/sentry/ca.pem (mode 0600, same user), which is
// exactly what any process of the sentry's user could do (docs/security.md).
import { before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import {
  Harness,
  MCP_SERVER_APP,
  RAW_APP,
  OUTRIGGER_BIN,
  DIRECT,
  HOOK_TIMEOUT,
  freePort,
  haveCommand,
  httpRequest,
  sleep,
  waitFor,
  appRequests,
} from './lib/harness.mjs';

const run = promisify(execFile);
const h = new Harness();
const skip = DIRECT
  ? 'E2E_DIRECT=1: needs real sidecars'
  : /fake-outrigger\.mjs$/.test(OUTRIGGER_BIN)
    ? 'the fake sidecar has no sentry or mTLS'
    : !haveCommand('openssl') || !haveCommand('sqlite3')
    ? 'needs the openssl and sqlite3 CLIs (scripts/install-deps.sh)'
    : false;

// ---------------------------------------------------------------------------------------------
// Small PKI with the openssl CLI

/** PEM blocks of `text`: [{type, pem}]. */
function pemBlocks(text) {
  return [...text.matchAll(/-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----\n?/g)].map((m) => ({ type: m[1], pem: m[0] }));
}

/** The issuer certificate and key of the sentry in <home>/sentry (the one that signs leaves). */
function sentryIssuer(home) {
  const blocks = pemBlocks(fs.readFileSync(path.join(home, 'sentry', 'ca.pem'), 'utf8'));
  const certs = blocks.filter((b) => b.type === 'CERTIFICATE').map((b) => ({ pem: b.pem, x: new crypto.X509Certificate(b.pem) }));
  const keys = blocks.filter((b) => b.type.endsWith('PRIVATE KEY')).map((b) => b.pem);
  // The issuer is the certificate that is not self-signed; its key is the one that matches it.
  const issuer = certs.find((c) => c.x.issuer !== c.x.subject || !c.x.verify(c.x.publicKey));
  assert.ok(issuer, 'no issuer certificate in ca.pem');
  const key = keys.find((k) => issuer.x.checkPrivateKey(crypto.createPrivateKey(k)));
  assert.ok(key, 'no key in ca.pem matches the issuer certificate');
  return { certPem: issuer.pem, keyPem: key, x: issuer.x };
}

class Pki {
  constructor(dir) {
    this.dir = dir;
    this.n = 0;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  async openssl(...args) {
    try {
      return await run('openssl', args, { cwd: this.dir, timeout: 20000 });
    } catch (err) {
      throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr || err.message}`);
    }
  }

  /** A self-signed CA (P-256) that has nothing to do with the sentry. */
  async selfSignedCa(name) {
    const key = path.join(this.dir, `${name}.key`);
    const crt = path.join(this.dir, `${name}.crt`);
    await this.openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key);
    await this.openssl('req', '-x509', '-new', '-key', key, '-subj', `/CN=${name}`, '-days', '2',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-addext', 'subjectAltName=URI:spiffe://public', '-out', crt);
    return { certPem: fs.readFileSync(crt, 'utf8'), keyPem: fs.readFileSync(key, 'utf8') };
  }

  /**
   * A leaf SVID signed by `ca` ({certPem, keyPem}): uris = URI SANs; start/end = openssl dates
   * (YYYYMMDDHHMMSSZ; default now-1h .. now+1d). Returns {key, cert (leaf + ca chain), serial}.
   */
  async leaf(ca, { uris, start, end }) {
    const i = ++this.n;
    const d = path.join(this.dir, `leaf${i}`);
    fs.mkdirSync(path.join(d, 'newcerts'), { recursive: true });
    fs.writeFileSync(path.join(d, 'index.txt'), '');
    fs.writeFileSync(path.join(d, 'serial'), crypto.randomBytes(16).toString('hex').replace(/^[89a-f]/, '1') + '\n');
    fs.writeFileSync(path.join(d, 'ca.crt'), ca.certPem);
    fs.writeFileSync(path.join(d, 'ca.key'), ca.keyPem, { mode: 0o600 });
    fs.writeFileSync(
      path.join(d, 'ca.cnf'),
      [
        '[ ca ]', 'default_ca = CA_default',
        '[ CA_default ]', `dir = ${d}`, 'database = $dir/index.txt', 'new_certs_dir = $dir/newcerts',
        'serial = $dir/serial', 'default_md = sha256', 'policy = policy_any', 'unique_subject = no',
        'copy_extensions = none', 'email_in_dn = no',
        '[ policy_any ]', 'commonName = optional',
        '[ leaf ]', 'basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature',
        'extendedKeyUsage = serverAuth, clientAuth',
        `subjectAltName = critical, ${uris.map((u) => `URI:${u}`).join(', ')}`, '',
      ].join('\n'),
    );
    const key = path.join(d, 'leaf.key');
    const csr = path.join(d, 'leaf.csr');
    const crt = path.join(d, 'leaf.crt');
    await this.openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', '/', '-out', csr);
    await this.openssl('ca', '-batch', '-config', path.join(d, 'ca.cnf'), '-cert', path.join(d, 'ca.crt'), '-keyfile', path.join(d, 'ca.key'),
      '-in', csr, '-out', crt, '-notext', '-extensions', 'leaf',
      '-startdate', start ?? opensslDate(Date.now() - 3600e3), '-enddate', end ?? opensslDate(Date.now() + 86400e3));
    const leafPem = fs.readFileSync(crt, 'utf8');
    return { key: fs.readFileSync(key, 'utf8'), cert: leafPem + ca.certPem, serial: new crypto.X509Certificate(leafPem).serialNumber };
  }
}

function opensslDate(ms) {
  return new Date(ms).toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

// ---------------------------------------------------------------------------------------------
// Raw connections to an internal port

/**
 * One HTTP/1.1 request to a sidecar's internal port over TLS with `tlsOpts` (key/cert/ca/...).
 * Resolves {handshake: bool, response: string (all bytes the server sent), error?: string,
 * peerCert?}; never rejects. Bounded by timeoutMs.
 */
function internalTlsRequest(port, tlsOpts, { callee, method = 'GET', reqPath = '/echo', headers = {}, timeoutMs = 5000 } = {}) {
  return new Promise((resolve) => {
    const out = { handshake: false, response: '', error: undefined, peerCert: undefined };
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(out);
    };
    const timer = setTimeout(() => {
      out.error = out.error ?? `timeout after ${timeoutMs} ms`;
      finish();
    }, timeoutMs);
    const sock = tls.connect({
      host: '127.0.0.1',
      port,
      servername: undefined,
      // The sidecar's certificate names a SPIFFE ID, not a host name: check the chain only.
      checkServerIdentity: () => undefined,
      minVersion: 'TLSv1.2',
      ...tlsOpts,
    });
    sock.on('secureConnect', () => {
      out.handshake = true;
      out.peerCert = sock.getPeerCertificate();
      const head = [`${method} ${reqPath} HTTP/1.1`, 'Host: 127.0.0.1', `dapr-callee-app-id: ${callee}`, 'Connection: close'];
      for (const [k, v] of Object.entries(headers)) head.push(`${k}: ${v}`);
      sock.write(head.join('\r\n') + '\r\n\r\n');
    });
    sock.on('data', (d) => (out.response += d.toString('latin1')));
    sock.on('error', (err) => {
      out.error = err.code ? `${err.code}: ${err.message}` : err.message;
      finish();
    });
    sock.on('close', finish);
    sock.on('end', finish);
  });
}

/** Plain TCP: sends `bytes`, collects what comes back until close or timeoutMs. */
function plainRequest(port, bytes, timeoutMs = 3000) {
  return new Promise((resolve) => {
    let response = '';
    let error;
    const s = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      error = `timeout after ${timeoutMs} ms`;
      s.destroy();
    }, timeoutMs);
    s.on('connect', () => s.write(bytes));
    s.on('data', (d) => (response += d.toString('latin1')));
    s.on('error', (err) => (error = err.code ?? err.message));
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ response, error });
    });
  });
}

const httpStatus = (response) => /^HTTP\/1\.[01] (\d{3})/.exec(response)?.[1];
const httpBody = (response) => response.slice(response.indexOf('\r\n\r\n') + 4);

// ---------------------------------------------------------------------------------------------
// Topology shared by tests 1 and 2: caller my-agent; mcp-server and raw-app behind sidecars.

let topo;
let pki;

before(async () => {
  if (skip) return;
  topo = await h.topology({
    callerId: 'my-agent',
    apps: [
      { appId: 'mcp-server', script: MCP_SERVER_APP },
      { appId: 'raw-app', script: RAW_APP, env: { E2E_LOG_REQUESTS: '1' } },
    ],
  });
  pki = new Pki(path.join(h.tmpHome('outrigger-pki-'), 'pki'));
}, HOOK_TIMEOUT);

async function whoami(client) {
  const r = await client.callTool({ name: 'whoami', arguments: {} });
  return JSON.parse(r.content[0].text);
}

h.test('MCP through two sidecars with mTLS on; the caller id comes from the certificate', { skip }, async () => {
  // mTLS is on by default (no flag given): the sidecars asked the local sentry for their SVIDs.
  const sentryLog = fs.readFileSync(path.join(topo.home, 'sentry', 'sentry.log'), 'utf8');
  for (const id of ['my-agent', 'mcp-server']) assert.match(sentryLog, new RegExp(`issued spiffe://public/ns/default/${id} `), `${id} got an SVID`);
  const { client } = await h.mcpClient(topo.invokeUrl('mcp-server', 'mcp'), {
    headers: { 'dapr-caller-app-id': 'admin', 'dapr-caller-namespace': 'kube-system' },
  });
  const r = await client.callTool({ name: 'echo', arguments: { message: 'over mTLS' } });
  assert.deepEqual(r.content, [{ type: 'text', text: 'Echo: over mTLS' }]);
  const w = await whoami(client);
  assert.equal(w.headers['dapr-caller-app-id'], 'my-agent', 'forged dapr-caller-app-id replaced by the verified one');
  assert.equal(w.headers['dapr-caller-namespace'], 'default');
  await client.close();

  // A peer with a valid SVID for `evil-agent` that talks to the internal port itself and claims
  // to be `admin` in a header: the app hears `evil-agent`, the name in its certificate.
  const issuer = sentryIssuer(topo.home);
  const evil = await pki.leaf(issuer, { uris: ['spiffe://public/ns/default/evil-agent'] });
  const bundle = fs.readFileSync(path.join(topo.home, 'sentry', 'bundle.pem'), 'utf8');
  const rawApp = topo.app('raw-app');
  const res = await internalTlsRequest(rawApp.sidecar.internalPort, { key: evil.key, cert: evil.cert, ca: bundle }, {
    callee: 'raw-app',
    headers: { 'dapr-caller-app-id': 'admin', 'Dapr-Caller-Namespace': 'kube-system' },
  });
  assert.equal(httpStatus(res.response), '200', `direct mTLS call: ${res.error ?? ''} ${res.response.slice(0, 300)}`);
  const echo = JSON.parse(httpBody(res.response));
  assert.equal(echo.headers['dapr-caller-app-id'], 'evil-agent');
  assert.equal(echo.headers['dapr-caller-namespace'], 'default');
  // The server presented its own SVID.
  assert.match(res.peerCert.subjectaltname ?? '', /^URI:spiffe:\/\/public\/ns\/default\/raw-app$/);
});

h.test('internal port refuses plaintext, TLS 1.2, missing, foreign, expired and malformed certificates', { skip, timeout: 90000 }, async () => {
  const rawApp = topo.app('raw-app');
  const port = rawApp.sidecar.internalPort;
  const bundle = fs.readFileSync(path.join(topo.home, 'sentry', 'bundle.pem'), 'utf8');
  const issuer = sentryIssuer(topo.home);
  const other = await pki.selfSignedCa('other-ca');
  const id = 'spiffe://public/ns/default/probe';
  const day = 86400e3;
  const now = Date.now();

  // Positive control: the same procedure with a good ID and dates is accepted. Without it, every
  // "refused" below could be a mistake in how the certificates are made.
  const good = await pki.leaf(issuer, { uris: [id] });
  const ok = await internalTlsRequest(port, { key: good.key, cert: good.cert, ca: bundle }, { callee: 'raw-app', reqPath: '/echo/control' });
  assert.equal(httpStatus(ok.response), '200', `control certificate must be served: ${ok.error ?? ''} ${ok.response.slice(0, 300)}`);
  assert.equal(JSON.parse(httpBody(ok.response)).headers['dapr-caller-app-id'], 'probe');

  const cases = [
    ['no client certificate', { ca: bundle }],
    ['a certificate from another CA', await pki.leaf(other, { uris: [id] }).then((c) => ({ key: c.key, cert: c.cert, ca: bundle }))],
    ['another CA, chain padded with the real issuer', await pki.leaf(other, { uris: [id] }).then((c) => ({ key: c.key, cert: c.cert + issuer.certPem, ca: bundle }))],
    ['an expired certificate', await pki.leaf(issuer, { uris: [id], start: opensslDate(now - 3 * day), end: opensslDate(now - day) }).then((c) => ({ key: c.key, cert: c.cert, ca: bundle }))],
    ['a not-yet-valid certificate', await pki.leaf(issuer, { uris: [id], start: opensslDate(now + day), end: opensslDate(now + 3 * day) }).then((c) => ({ key: c.key, cert: c.cert, ca: bundle }))],
    ['a malformed SPIFFE ID (spiffe://public/nope/x)', await pki.leaf(issuer, { uris: ['spiffe://public/nope/x'] }).then((c) => ({ key: c.key, cert: c.cert, ca: bundle }))],
    ['a SPIFFE ID without app id', await pki.leaf(issuer, { uris: ['spiffe://public/ns/default'] }).then((c) => ({ key: c.key, cert: c.cert, ca: bundle }))],
    ['an upper-case trust domain', await pki.leaf(issuer, { uris: ['spiffe://PUBLIC/ns/default/probe'] }).then((c) => ({ key: c.key, cert: c.cert, ca: bundle }))],
    ['two SPIFFE IDs', await pki.leaf(issuer, { uris: [id, 'spiffe://public/ns/default/admin'] }).then((c) => ({ key: c.key, cert: c.cert, ca: bundle }))],
    ['the issuer (a CA certificate) as client certificate', { key: issuer.keyPem, cert: issuer.certPem, ca: bundle }],
    ['TLS 1.2 with a valid certificate', { key: good.key, cert: good.cert, ca: bundle, maxVersion: 'TLSv1.2' }],
  ];
  const before = appRequests(rawApp.proc).length;
  for (const [name, opts] of cases) {
    const r = await internalTlsRequest(port, opts, { callee: 'raw-app', reqPath: `/echo/refused` });
    assert.equal(httpStatus(r.response), undefined, `${name}: got an HTTP response: ${r.response.slice(0, 300)}`);
    assert.ok(r.error || !r.handshake || r.response === '', `${name}: expected a refusal (${JSON.stringify(r)})`);
    assert.ok(!/timeout/.test(r.error ?? ''), `${name}: the sidecar neither refused nor answered: ${r.error}`);
  }
  // Plain HTTP to the TLS port: no HTTP response, the connection is closed.
  const plain = await plainRequest(port, 'GET /echo/plain HTTP/1.1\r\nHost: 127.0.0.1\r\ndapr-callee-app-id: raw-app\r\ndapr-caller-app-id: my-agent\r\ndapr-caller-namespace: default\r\n\r\n');
  assert.equal(httpStatus(plain.response), undefined, `plaintext got an HTTP response: ${plain.response.slice(0, 200)}`);
  assert.ok(!/timeout/.test(plain.error ?? ''), 'plaintext connection was neither answered nor closed');

  // None of it reached the app; the sidecar still serves a fresh mTLS connection and the caller.
  await sleep(200);
  assert.deepEqual(appRequests(rawApp.proc).slice(before).filter((r) => r.url.includes('refused') || r.url.includes('plain')), []);
  const again = await internalTlsRequest(port, { key: good.key, cert: good.cert, ca: bundle }, { callee: 'raw-app', reqPath: '/echo/after' });
  assert.equal(httpStatus(again.response), '200', `after the refusals: ${again.error ?? ''} ${again.response.slice(0, 200)}`);
  const viaCaller = await httpRequest(topo.invokeUrl('raw-app', 'echo/via-caller'));
  assert.equal(viaCaller.status, 200, viaCaller.text);
  assert.equal(viaCaller.json.headers['dapr-caller-app-id'], 'my-agent');
  assert.equal(rawApp.sidecar.proc.exited, false);
});

// ---------------------------------------------------------------------------------------------
// 3. Misrouting

async function sql(db, statement) {
  const { stdout } = await run('sqlite3', ['-cmd', '.timeout 5000', db, statement], { timeout: 10000 });
  return stdout.trim();
}

h.test('a peer with a valid SVID for x is refused when the caller resolved y', { skip }, async () => {
  const home = h.tmpHome();
  const app = await h.startNodeApp('x-app', RAW_APP, { env: { E2E_LOG_REQUESTS: '1' } });
  const x = await h.startSidecar({ appId: 'x', appPort: app.port, home });
  const a = await h.startSidecar({ appId: 'caller-a', home });
  const db = path.join(home, 'nameresolution.db');

  // Control: x itself is reachable through A.
  const ok = await httpRequest(`${a.url}/v1.0/invoke/x/method/echo/control`);
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.headers['dapr-caller-app-id'], 'caller-a');

  // Name resolution now says app y lives at an address that reaches x's internal port. The
  // registry has a unique index on address, so y gets its own: a TCP relay to x (as a stale
  // registry entry, a reused port or a DNS mix-up would). x's own row stays as it is.
  const xAddr = await sql(db, "SELECT address FROM hosts WHERE app_id = 'x' AND namespace = 'default' LIMIT 1;");
  assert.equal(xAddr, `127.0.0.1:${x.internalPort}`, "x's registered address");
  const relayed = { connections: 0, sockets: new Set() };
  const relay = net.createServer((c) => {
    relayed.connections++;
    relayed.sockets.add(c);
    c.on('close', () => relayed.sockets.delete(c));
    const up = net.connect({ host: '127.0.0.1', port: x.internalPort });
    c.pipe(up).pipe(c);
    c.on('error', () => up.destroy());
    up.on('error', () => c.destroy());
  });
  await new Promise((r) => relay.listen(0, '127.0.0.1', r));
  h.onCleanup(() => {
    for (const c of relayed.sockets) c.destroy();
    return new Promise((r) => relay.close(r));
  });
  const insert = `REPLACE INTO hosts (registration_id, address, app_id, namespace, last_update) VALUES ('e2e-misroute-y', '127.0.0.1:${relay.address().port}', 'y', 'default', unixepoch(CURRENT_TIMESTAMP));`;
  await sql(db, insert);
  let refreshing = true;
  const refresher = (async () => {
    while (refreshing) {
      await sleep(1000);
      if (refreshing) await sql(db, insert).catch(() => {});
    }
  })();
  try {
    const before = appRequests(app).length;
    for (let i = 0; i < 3; i++) {
      const r = await httpRequest(`${a.url}/v1.0/invoke/y/method/x`);
      assert.equal(r.status, 500, `call ${i} for y answered by x: ${r.status} ${r.text}`);
      assert.equal(r.json?.errorCode, 'ERR_DIRECT_INVOKE', r.text);
      assert.match(r.json.message, /^failed to invoke, id: y, err: /, r.text);
      // Refused by A's handshake (peer ID check), not by x's callee-header check afterwards.
      assert.doesNotMatch(r.json.message, /callee mismatch/, 'the request reached x: the caller did not check the peer identity');
      assert.match(r.json.message, /TLS handshake failed/, r.text);
    }
    assert.ok(relayed.connections >= 1, 'the calls for y went to the relay (to x)');
    await sleep(200);
    assert.deepEqual(appRequests(app).slice(before), [], "x's app saw a request meant for y");
    // x and A are still fine.
    const after = await httpRequest(`${a.url}/v1.0/invoke/x/method/echo/after`);
    assert.equal(after.status, 200, after.text);
  } finally {
    refreshing = false;
    await refresher;
  }
});

// ---------------------------------------------------------------------------------------------
// 4. Rotation

/** Starts `outrigger sentry` under home and waits until it serves. */
async function startSentry(home, args = []) {
  const p = h.spawn('sentry', OUTRIGGER_BIN, ['sentry', '--log-level', 'info', ...args], { env: { OUTRIGGER_HOME: home } });
  await waitFor('sentry serving', () => /msg="serving trust domain/.test(p.output()), { timeoutMs: 15000, proc: p });
  return p;
}

/** Serials (lower-case hex, no leading zeros) that a sidecar logged as installed, in order. */
function installedSerials(proc) {
  return [...proc.output().matchAll(/workload certificate for \S+ installed \(serial ([0-9a-f]+), valid until (\S+)\)/g)].map((m) => ({
    serial: m[1].replace(/^0+/, ''),
    until: Date.parse(m[2]),
  }));
}

h.test('20 s workload TTL: 60 s of calls without a failure while the server certificate rotates', { skip, timeout: 150000 }, async (t) => {
  const home = h.tmpHome();
  const sentry = await startSentry(home, ['--workload-cert-ttl', '20s']);
  const app = await h.startNodeApp('mcp-server-rot', MCP_SERVER_APP);
  // info: the rotation is read from their 'workload certificate ... installed' lines.
  const b = await h.startSidecar({ appId: 'mcp-server', appPort: app.port, home, logLevel: 'info' });
  const a = await h.startSidecar({ appId: 'rot-agent', home, logLevel: 'info' });
  // Both sidecars used this sentry (not one of their own): their certificates live ~20 s.
  for (const sc of [a, b]) {
    const first = installedSerials(sc.proc)[0];
    assert.ok(first, `${sc.appId} logged no installed certificate`);
    assert.ok(first.until - Date.now() < 25000, `${sc.appId}'s certificate lives past the 20 s TTL (until ${new Date(first.until).toISOString()})`);
  }
  assert.match(sentry.output(), /issued spiffe:\/\/public\/ns\/default\/mcp-server/);

  // A long-lived client certificate of our own, to look at the certificate B serves right now.
  const issuer = sentryIssuer(home);
  const probe = await pki.leaf(issuer, { uris: ['spiffe://public/ns/default/probe'] });
  const bundle = fs.readFileSync(path.join(home, 'sentry', 'bundle.pem'), 'utf8');
  const served = new Set();

  const url = `${a.url}/v1.0/invoke/mcp-server/method/mcp`;
  const failures = [];
  const counts = { steady: 0, sparse: 0 };
  const deadline = Date.now() + 60000;
  // Loop 1: back-to-back calls on one session (pooled connections stay up).
  const steady = (async () => {
    const { client } = await h.mcpClient(url, { name: 'steady' });
    for (let i = 0; Date.now() < deadline; i++) {
      try {
        const r = await client.callTool({ name: 'echo', arguments: { message: `s${i}` } }, undefined, { timeout: 10000 });
        if (r.content?.[0]?.text !== `Echo: s${i}`) failures.push(`steady ${i}: ${JSON.stringify(r)}`);
        counts.steady++;
      } catch (err) {
        failures.push(`steady ${i} at +${60000 - (deadline - Date.now())} ms: ${err.message}`);
      }
      await sleep(20);
    }
    await client.close();
  })();
  // Loop 2: a new session every 4.5 s, longer than the pools' idle timeout (4 s), so each one
  // needs new connections (full or resumed handshakes) across rotations.
  const sparse = (async () => {
    for (let i = 0; Date.now() < deadline; i++) {
      try {
        const { client } = await h.mcpClient(url, { name: `sparse${i}`, connectTimeoutMs: 10000 });
        const r = await client.callTool({ name: 'echo', arguments: { message: `p${i}` } }, undefined, { timeout: 10000 });
        if (r.content?.[0]?.text !== `Echo: p${i}`) failures.push(`sparse ${i}: ${JSON.stringify(r)}`);
        counts.sparse++;
        await client.close();
      } catch (err) {
        failures.push(`sparse ${i} at +${60000 - (deadline - Date.now())} ms: ${err.message}`);
      }
      await sleep(4500);
    }
  })();
  // B's install log lines, collected as they come: the harness keeps the last 256 KiB of a
  // process's output, and the audit lines of 60 s of calls can push the early ones out.
  const loggedSet = new Set();
  const collectLogged = () => installedSerials(b.proc).forEach((s) => loggedSet.add(s.serial));
  // Every 5 s: which certificate does B serve?
  const watcher = (async () => {
    while (Date.now() < deadline) {
      collectLogged();
      const r = await internalTlsRequest(b.internalPort, { key: probe.key, cert: probe.cert, ca: bundle }, { callee: 'mcp-server', reqPath: '/healthz' });
      if (r.peerCert?.serialNumber) served.add(r.peerCert.serialNumber.toLowerCase().replace(/^0+/, ''));
      else failures.push(`probe handshake failed: ${r.error}`);
      await sleep(5000);
    }
  })();
  await Promise.all([steady, sparse, watcher]);

  collectLogged();
  const logged = [...loggedSet];
  t.diagnostic(`calls: ${counts.steady} steady + ${counts.sparse} sparse; B installed ${new Set(logged).size} certificates, served ${served.size} distinct`);
  assert.deepEqual(failures, [], `${failures.length} failed calls`);
  assert.ok(counts.steady >= 300, `only ${counts.steady} steady calls in 60 s`);
  assert.ok(counts.sparse >= 10, `only ${counts.sparse} sparse calls in 60 s`);
  assert.ok(new Set(logged).size >= 3, `B's certificate changed ${new Set(logged).size - 1} time(s) in 60 s: ${logged}`);
  assert.ok(served.size >= 3, `B served ${served.size} distinct certificates over 60 s: ${[...served]}`);
  for (const s of served) assert.ok(logged.includes(s), `served serial ${s} was never logged as installed (${logged})`);
  assert.ok(new Set(installedSerials(a.proc).map((s) => s.serial)).size >= 3, 'A rotated too');
  // Rotations are counted with Dapr's metric name; none failed.
  const metrics = await (await fetch(`http://127.0.0.1:${b.metricsPort}/metrics`)).text();
  const rotated = Number((metrics.match(/^dapr_runtime_mtls_workload_cert_rotated_total\{app_id="[^"]*"\} (\d+)$/m) || [])[1]);
  assert.ok(rotated >= 2 && rotated >= logged.length - 1, `rotated_total ${rotated}, installed ${logged.length}\n${metrics}`);
  assert.match(metrics, /^dapr_runtime_mtls_workload_cert_rotated_fail_total\{app_id="[^"]*"\} 0$/m);
});

// ---------------------------------------------------------------------------------------------
// 5. JWT SVIDs

function httpsGetJson(url, ca) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`${url}: ${res.statusCode} ${body}`));
        try {
          resolve(JSON.parse(body));
        } catch (err) {
          reject(new Error(`${url}: not JSON: ${body.slice(0, 200)}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timeout`)));
    req.on('error', reject);
  });
}

async function fetchJwt(home, args) {
  try {
    const { stdout } = await run(OUTRIGGER_BIN, ['sentry', 'jwt', ...args], { env: { ...process.env, OUTRIGGER_HOME: home }, timeout: 15000 });
    return stdout.trim();
  } catch (err) {
    throw new Error(`outrigger sentry jwt ${args.join(' ')}: ${err.stderr || err.message}`);
  }
}

h.test('JWT SVID for mcp://payments verifies with jose against the JWKS, and only for that audience', { skip }, async () => {
  const home = h.tmpHome();
  const jwksPort = await freePort();
  await startSentry(home, ['--jwks-port', String(jwksPort)]);
  const token = await fetchJwt(home, ['--app-id', 'payments-agent', '--audience', 'mcp://payments']);
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a compact JWS on stdout');

  const ca = fs.readFileSync(path.join(home, 'sentry', 'bundle.pem'));
  const jwks = await httpsGetJson(`https://localhost:${jwksPort}/.well-known/jwks.json`, ca);
  const keys = createLocalJWKSet(jwks);
  const issuer = `https://localhost:${jwksPort}`;
  const { payload, protectedHeader } = await jwtVerify(token, keys, { audience: 'mcp://payments', issuer, algorithms: ['ES256'] });
  assert.equal(payload.sub, 'spiffe://public/ns/default/payments-agent');
  assert.equal(protectedHeader.alg, 'ES256');
  assert.ok(payload.exp > Date.now() / 1000 && payload.exp - Date.now() / 1000 <= 5 * 60 + 5, `exp ${payload.exp}`);

  await assert.rejects(jwtVerify(token, keys, { audience: 'mcp://other' }), (err) => err.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && err.claim === 'aud');
  // Dapr adds the trust domain to aud; we do not (docs/security.md).
  await assert.rejects(jwtVerify(token, keys, { audience: 'public' }), (err) => err.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED');
  // A tampered payload (another sub) fails the signature.
  const [hd, , sig] = token.split('.');
  const forged = Buffer.from(JSON.stringify({ ...decodeJwt(token), sub: 'spiffe://public/ns/default/admin' })).toString('base64url');
  await assert.rejects(jwtVerify(`${hd}.${forged}.${sig}`, keys, { audience: 'mcp://payments' }), (err) => err.code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
  // Several audiences: the token is good for each of them.
  const multi = await fetchJwt(home, ['--app-id', 'payments-agent', '--namespace', 'finance', '--audience', 'mcp://payments', '--audience', 'mcp://ledger']);
  const m = await jwtVerify(multi, keys, { audience: 'mcp://ledger' });
  assert.equal(m.payload.sub, 'spiffe://public/ns/finance/payments-agent');

  // The verifier of docs/security.md, as written there: createRemoteJWKSet trusting bundle.pem via
  // NODE_EXTRA_CA_CERTS, in a child node process.
  const script = `import { createRemoteJWKSet, jwtVerify } from 'jose';
const jwks = createRemoteJWKSet(new URL(process.argv[1]));
for (const aud of ['mcp://payments', 'mcp://other']) {
  try { await jwtVerify(process.argv[2], jwks, { audience: aud }); console.log(aud + ' ok'); }
  catch (e) { console.log(aud + ' ' + e.code); }
}`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script, `https://localhost:${jwksPort}/.well-known/jwks.json`, token], {
    cwd: path.dirname(new URL(import.meta.url).pathname),
    env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(home, 'sentry', 'bundle.pem') },
    encoding: 'utf8',
    timeout: 20000,
  });
  assert.equal(child.stdout, 'mcp://payments ok\nmcp://other ERR_JWT_CLAIM_VALIDATION_FAILED\n', `child verifier: ${child.stdout} ${child.stderr}`);

  // Asking without a running sentry fails clearly, with nothing on stdout.
  const empty = h.tmpHome();
  const r = spawnSync(OUTRIGGER_BIN, ['sentry', 'jwt', '--app-id', 'a', '--audience', 'x'], { env: { ...process.env, OUTRIGGER_HOME: empty }, encoding: 'utf8', timeout: 15000 });
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /no sentry/);
});
