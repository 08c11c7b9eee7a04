// E2E harness: free ports, outrigger sidecars, node apps, MCP clients, cleanup.
//
// Every process is spawned in its own process group and its stdout/stderr go into an in-memory
// buffer; the buffers are printed only when a test (or startup) fails. Everything is killed in the
// suite's after() hook, and again synchronously on process exit, so nothing leaks even when a test
// throws or times out.
//
// Env:
//   OUTRIGGER_BIN        sidecar binary (default <repo>/build/outrigger)
//   E2E_DIRECT=1         no sidecars: clients talk straight to the apps (validates apps + tests);
//                        sidecar-only tests are skipped
//   E2E_LOG_LEVEL        --log-level passed to sidecars (default info)
//   E2E_SHOW_LOGS=1      print process logs after every test, not only failing ones
//   OUTRIGGER_SHARED_DIR shared/ folder (default <repo>/../shared)
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test as nodeTest } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';

export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = path.resolve(E2E_DIR, '..', '..');
export const APPS_DIR = path.join(E2E_DIR, 'apps');
export const MCP_SERVER_APP = path.join(APPS_DIR, 'mcp-server.mjs');
export const RAW_APP = path.join(APPS_DIR, 'raw-app.mjs');
export const SHARED_DIR = process.env.OUTRIGGER_SHARED_DIR ?? path.resolve(REPO_ROOT, '..', 'shared');
export const OUTRIGGER_BIN = process.env.OUTRIGGER_BIN
  ? path.resolve(process.env.OUTRIGGER_BIN) // relative to the directory the suite was started from
  : path.join(REPO_ROOT, 'build', 'outrigger');
export const DIRECT = process.env.E2E_DIRECT === '1';
export const SIDECAR_LOG_LEVEL = process.env.E2E_LOG_LEVEL ?? 'info';
const SHOW_LOGS = process.env.E2E_SHOW_LOGS === '1';
// Output kept per process: a sidecar writes one audit line per MCP tool call at info level, and
// tests read start-up lines back after thousands of calls.
const MAX_LOG_BYTES = 4 * 1024 * 1024;
/** Default per-test timeout (a hung proxy must fail the test, not stall the suite). */
export const DEFAULT_TEST_TIMEOUT_MS = 60000;
/** For before() hooks that start processes. */
export const HOOK_TIMEOUT = { timeout: 60000 };

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Like sleep, but does not keep the process alive (for timeouts raced against other promises). */
const sleepUnref = (ms) => new Promise((r) => setTimeout(r, ms).unref());

/** Skip reason for sidecar-only tests (a string for node:test's `skip` option), or false. */
export const needsSidecar = DIRECT ? 'E2E_DIRECT=1: needs real sidecars' : false;

// ---------------------------------------------------------------------------------------------
// Ports

const handedOut = new Set();

/** A free TCP port on 127.0.0.1 not handed out before by this process. */
export async function freePort() {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.on('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const p = srv.address().port;
        srv.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: no fresh port after 50 tries');
}

/** Resolves when something accepts TCP connections on 127.0.0.1:port. */
export function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------------------------------------
// Processes

const allProcs = new Set();

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (exited, not yet reaped by a PID 1 that never reaps) counts as gone.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
export { pidAlive };

/** Direct children of pid, from /proc (Linux). */
export function childPids(pid) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push(Number(d));
    } catch {
      /* raced with exit */
    }
  }
  return out;
}

/** All descendants of pid (children, grandchildren, ...). */
export function descendantPids(pid) {
  const out = [];
  const todo = [pid];
  while (todo.length) {
    for (const c of childPids(todo.pop())) {
      out.push(c);
      todo.push(c);
    }
  }
  return out;
}

export class Proc {
  constructor(name, cmd, args, opts = {}) {
    this.name = name;
    this.cmd = cmd;
    this.args = args;
    this.chunks = [];
    this.bytes = 0;
    this.exitCode = null;
    this.signal = null;
    this.exited = false;
    this.child = spawn(cmd, args, {
      cwd: opts.cwd ?? E2E_DIR,
      env: { ...process.env, ...(opts.env ?? {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // own process group: cleanup kills the whole group
    });
    this.pid = this.child.pid;
    this.exitPromise = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exited = true;
        this.exitCode = code;
        this.signal = signal;
        this._append('harness', `exited code=${code} signal=${signal}\n`);
        resolve({ code, signal });
      });
      this.child.on('error', (err) => {
        this._append('harness', `spawn error: ${err.message}\n`);
        this.exited = true;
        this.exitCode = -1;
        resolve({ code: -1, signal: null, error: err });
      });
    });
    this.child.stdout.on('data', (d) => this._append('out', d));
    this.child.stderr.on('data', (d) => this._append('err', d));
    allProcs.add(this);
  }

  _append(stream, data) {
    const s = String(data);
    this.chunks.push(stream === 'err' ? s : stream === 'harness' ? `<<${s.trimEnd()}>>\n` : s);
    this.bytes += s.length;
    while (this.bytes > MAX_LOG_BYTES && this.chunks.length > 1) this.bytes -= this.chunks.shift().length;
  }

  output() {
    return this.chunks.join('');
  }

  /** Resolves {code, signal} when the process exits, or rejects after ms. */
  waitExit(ms = 10000) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name} (pid ${this.pid}) did not exit within ${ms} ms`)), ms);
    });
    return Promise.race([this.exitPromise, timeout]).finally(() => clearTimeout(timer));
  }

  /** Signal this process only (not its group). */
  signalSelf(sig) {
    if (!this.exited) {
      try {
        process.kill(this.pid, sig);
      } catch {
        /* gone */
      }
    }
  }

  /** SIGTERM the process group, SIGKILL it after graceMs. */
  async kill(graceMs = 3000) {
    const group = (sig) => {
      try {
        process.kill(-this.pid, sig);
      } catch {
        /* group gone */
      }
    };
    if (!this.exited) {
      group('SIGTERM');
      await Promise.race([this.exitPromise, sleepUnref(graceMs)]);
    }
    group('SIGKILL'); // leftovers in the group (children of a dead parent) too
    allProcs.delete(this);
  }
}

const allTmpDirs = new Set();

/**
 * Sidecars start a local sentry (the CA) under their OUTRIGGER_HOME on demand, detached in its own
 * session so it outlives them, as it should for users. Tests stop it with the home: its pid is in
 * <home>/sentry/sentry.lock.
 */
function killSentry(home) {
  try {
    const pid = Number(fs.readFileSync(path.join(home, 'sentry', 'sentry.lock'), 'utf8').trim());
    // Pids wrap around: kill only if that pid is still an outrigger sentry.
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (pid > 1 && cmd.includes('sentry') && cmd.some((a) => a.includes('outrigger'))) process.kill(pid, 'SIGKILL');
  } catch {
    /* no sentry there */
  }
}

function killAllNow() {
  for (const p of allProcs) {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const d of allTmpDirs) {
    killSentry(d);
    fs.rmSync(d, { recursive: true, force: true });
  }
}
process.on('exit', killAllNow);
// A signal's default action skips 'exit' handlers: kill the children first, then die.
for (const [sig, num] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
  process.once(sig, () => {
    killAllNow();
    process.exit(128 + num);
  });
}

// ---------------------------------------------------------------------------------------------
// Waiting

export async function waitFor(what, fn, { timeoutMs = 15000, intervalMs = 100, proc } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    if (proc?.exited) throw new Error(`${what}: ${proc.name} exited early (code=${proc.exitCode} signal=${proc.signal})`);
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: timed out after ${timeoutMs} ms${last ? ` (last error: ${last.message})` : ''}`);
    await sleep(intervalMs);
  }
}

/** fetch with a timeout (ms); the body is read as text unless raw=true. */
export async function httpRequest(url, { method = 'GET', headers = {}, body, timeoutMs = 10000, raw = false } = {}) {
  const res = await fetch(url, { method, headers, body, signal: AbortSignal.timeout(timeoutMs) });
  if (raw) return res;
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

// ---------------------------------------------------------------------------------------------
// Harness: one per test file

export class Harness {
  constructor() {
    this.procs = [];
    this.homes = [];
    this.clients = [];
    this.cleanups = [];
    after(() => this.cleanup());
  }

  /** Per-test temporary OUTRIGGER_HOME. */
  tmpHome(prefix = 'outrigger-home-') {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    this.homes.push(d);
    allTmpDirs.add(d);
    return d;
  }

  spawn(name, cmd, args, opts) {
    const p = new Proc(name, cmd, args, opts);
    this.procs.push(p);
    return p;
  }

  /** All captured process output, one block per process. */
  logs() {
    return this.procs
      .map((p) => `----- ${p.name} (pid ${p.pid}): ${[p.cmd, ...p.args].join(' ')}\n${p.output() || '(no output)\n'}`)
      .join('');
  }

  dump(reason) {
    process.stderr.write(`\n===== process logs (${reason}) =====\n${this.logs()}===== end of process logs =====\n`);
  }

  /** Spawn a node app and wait until it accepts connections on `port`. */
  async startNodeApp(name, script, { port, args = [], env = {}, timeoutMs = 15000 } = {}) {
    port ??= await freePort();
    const p = this.spawn(name, process.execPath, [script, ...args], { env: { APP_PORT: String(port), PORT: String(port), ...env } });
    p.port = port;
    try {
      await waitFor(`${name} listening on ${port}`, () => canConnect(port), { timeoutMs, proc: p });
    } catch (err) {
      throw new Error(`${err.message}\n${this.logs()}`);
    }
    return p;
  }

  /**
   * Start `outrigger sidecar` and wait for GET /v1.0/healthz == 204.
   * Returns {appId, httpPort, internalPort, metricsPort, home, url, proc}.
   */
  async startSidecar({ appId, appPort, home, namespace, logLevel = SIDECAR_LOG_LEVEL, extraArgs = [], env = {}, timeoutMs = 15000 }) {
    if (DIRECT) throw new Error('startSidecar called in E2E_DIRECT mode');
    if (!fs.existsSync(OUTRIGGER_BIN)) throw new Error(`outrigger binary not found at ${OUTRIGGER_BIN} (set OUTRIGGER_BIN or build it)`);
    const httpPort = await freePort();
    const internalPort = await freePort();
    const metricsPort = await freePort();
    const args = ['sidecar', '--app-id', appId, '--dapr-http-port', String(httpPort), '--dapr-internal-port', String(internalPort), '--metrics-port', String(metricsPort), '--log-level', logLevel];
    if (appPort) args.push('--app-port', String(appPort));
    if (namespace) args.push('--namespace', namespace);
    args.push(...extraArgs);
    const proc = this.spawn(`sidecar:${appId}`, OUTRIGGER_BIN, args, { env: { OUTRIGGER_HOME: home, ...env } });
    const url = `http://127.0.0.1:${httpPort}`;
    try {
      await waitFor(
        `sidecar ${appId} healthz 204`,
        async () => (await httpRequest(`${url}/v1.0/healthz`, { timeoutMs: 1000 })).status === 204,
        { timeoutMs, proc },
      );
    } catch (err) {
      throw new Error(`${err.message}\n${this.logs()}`);
    }
    return { appId, httpPort, internalPort, metricsPort, home, url, proc };
  }

  /**
   * Apps behind their own sidecars plus one caller sidecar without an app, all sharing one
   * OUTRIGGER_HOME (so they find each other by app id):
   *
   *   client -> caller sidecar (callerId) -> internal hop -> app sidecar (appId) -> app
   *
   * apps: [{appId, script, args, env}]. In E2E_DIRECT mode no sidecar is started and the URL
   * helpers point straight at the apps.
   */
  async topology({ callerId = 'my-agent', apps, namespace }) {
    const home = this.tmpHome();
    const topo = new Topology(home);
    for (const a of apps) {
      const app = await this.startNodeApp(a.appId, a.script, { args: a.args ?? [], env: a.env ?? {} });
      const sidecar = DIRECT ? null : await this.startSidecar({ appId: a.appId, appPort: app.port, home, namespace });
      topo.apps[a.appId] = { appId: a.appId, port: app.port, proc: app, sidecar };
    }
    topo.caller = DIRECT ? null : await this.startSidecar({ appId: callerId, home, namespace });
    return topo;
  }

  /** Connect an SDK Client. kind: 'streamable' | 'sse'. headers go on every request. */
  async mcpClient(url, { kind = 'streamable', headers = {}, name = 'e2e-client', capabilities = {}, connectTimeoutMs = 20000 } = {}) {
    const transport =
      kind === 'sse'
        ? new SSEClientTransport(new URL(url), { requestInit: { headers } })
        : new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
    const client = new Client({ name, version: '1.0.0' }, { capabilities });
    this.clients.push(client);
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`MCP connect (${kind}) to ${url} timed out after ${connectTimeoutMs} ms`)), connectTimeoutMs);
    });
    try {
      await Promise.race([client.connect(transport, { timeout: connectTimeoutMs }), timeout]);
    } finally {
      clearTimeout(timer);
    }
    return { client, transport };
  }

  /** Register an extra async cleanup (runs before processes are killed). */
  onCleanup(fn) {
    this.cleanups.push(fn);
  }

  /**
   * node:test `test()` that prints all process logs when the test fails (or always with
   * E2E_SHOW_LOGS=1). Same signature as node:test's test(name, [options], fn).
   */
  test(name, options, fn) {
    if (typeof options === 'function') [options, fn] = [{}, options];
    options = { timeout: DEFAULT_TEST_TIMEOUT_MS, ...options };
    return nodeTest(name, options, async (t) => {
      try {
        await fn(t);
      } catch (err) {
        this.dump(`test failed: ${name}`);
        throw err;
      }
      if (SHOW_LOGS) this.dump(`after test: ${name}`);
    });
  }

  async cleanup() {
    for (const fn of this.cleanups.splice(0)) await Promise.resolve().then(fn).catch(() => {});
    await Promise.all(this.clients.splice(0).map((c) => Promise.race([c.close().catch(() => {}), sleepUnref(2000)])));
    await Promise.all(this.procs.map((p) => p.kill()));
    for (const d of this.homes.splice(0)) {
      killSentry(d);
      fs.rmSync(d, { recursive: true, force: true });
      allTmpDirs.delete(d);
    }
  }
}

export class Topology {
  constructor(home) {
    this.home = home;
    this.apps = {};
    this.caller = null;
  }

  /** Invoke-URL form: http://A/v1.0/invoke/<appId>/method/<method> (direct: http://app/<method>). */
  invokeUrl(appId, method) {
    method = method.replace(/^\//, '');
    if (DIRECT) return `http://127.0.0.1:${this.app(appId).port}/${method}`;
    return `${this.caller.url}/v1.0/invoke/${appId}/method/${method}`;
  }

  /** Header form: http://A/<method> + {'dapr-app-id': appId} (direct: http://app/<method>). */
  headerForm(appId, method) {
    method = method.replace(/^\//, '');
    const base = DIRECT ? `http://127.0.0.1:${this.app(appId).port}` : this.caller.url;
    return { url: `${base}/${method}`, headers: { 'dapr-app-id': appId } };
  }

  /** Caller sidecar base URL (direct mode: undefined). */
  get callerUrl() {
    return this.caller?.url;
  }

  app(appId) {
    const a = this.apps[appId];
    if (!a) throw new Error(`unknown app ${appId}`);
    return a;
  }
}

// ---------------------------------------------------------------------------------------------
// MCP conformance suite

/** Node 20 needs the shared loader shim for @modelcontextprotocol/conformance (fs.globSync). */
export function conformanceCommand(url) {
  const entry = path.join(E2E_DIR, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js');
  const args = [];
  if (Number(process.versions.node.split('.')[0]) < 22) {
    const shim = path.join(SHARED_DIR, 'tools', 'mcp-conformance-node20', 'node20-register.mjs');
    if (!fs.existsSync(shim)) return { error: `Node ${process.versions.node} needs the conformance shim, not found at ${shim}` };
    args.push('--import', shim);
  }
  args.push(entry, 'server', '--url', url);
  return { cmd: process.execPath, args };
}

/**
 * Run the server conformance suite against url. Resolves
 * {passed, failed, scenarios: Map(name -> "p/f"), output}.
 */
export async function runConformance(h, url, { name = 'conformance', timeoutMs = 300000 } = {}) {
  const c = conformanceCommand(url);
  if (c.error) throw new Error(c.error);
  const cwd = h.tmpHome('outrigger-conformance-');
  const p = h.spawn(name, c.cmd, c.args, { cwd });
  await p.waitExit(timeoutMs);
  const out = p.output();
  const m = /Total: (\d+) passed, (\d+) failed/.exec(out);
  if (!m) throw new Error(`${name}: no "Total:" line in output (exit ${p.exitCode})`);
  const scenarios = new Map();
  for (const line of out.split('\n')) {
    const s = /^[✓✗] ([\w:/.-]+): (\d+) passed, (\d+) failed/.exec(line);
    if (s) scenarios.set(s[1], `${s[2]}/${s[3]}`);
  }
  return { passed: Number(m[1]), failed: Number(m[2]), scenarios, output: out };
}

/** Path of a bin shipped by an npm package in tests/e2e/node_modules. */
export function packageFile(...parts) {
  return path.join(E2E_DIR, 'node_modules', ...parts);
}

/** True when `cmd` is on PATH. */
export function haveCommand(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

// ---------------------------------------------------------------------------------------------
// App request logs

/**
 * Requests an app started with E2E_LOG_REQUESTS=1 (apps/mcp-server.mjs, apps/raw-app.mjs) has
 * received so far, in order: [{method, url, caller}] parsed from its captured stdout.
 */
export function appRequests(proc) {
  return [...proc.output().matchAll(/^\[[\w-]+\] request (\S+) (\S*) caller=(\S*)$/gm)].map((m) => ({ method: m[1], url: m[2], caller: m[3] }));
}
