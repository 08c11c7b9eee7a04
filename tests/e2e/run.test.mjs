// `outrigger run`: starts a sidecar, waits for health, runs the app with APP_ID, APP_PORT,
// DAPR_HTTP_PORT, DAPR_HTTP_ENDPOINT set, prefixes the app's output lines, forwards SIGINT/SIGTERM
// and exits with the app's exit code.
import assert from 'node:assert/strict';
import {
  Harness, RAW_APP, OUTRIGGER_BIN, needsSidecar, freePort, canConnect, waitFor, httpRequest, descendantPids, pidAlive,
} from './lib/harness.mjs';

const h = new Harness();

function startRun(appId, extra, cmd, { env = {} } = {}) {
  const home = h.tmpHome();
  return h.spawn(`run:${appId}`, OUTRIGGER_BIN, ['run', '--app-id', appId, ...extra, '--', ...cmd], { env: { OUTRIGGER_HOME: home, ...env } });
}

h.test('run: app gets the env, is reachable through the run sidecar, SIGTERM stops everything', { skip: needsSidecar, timeout: 60000 }, async () => {
  const appPort = await freePort();
  const httpPort = await freePort();
  const run = startRun('raw-app', ['--app-port', String(appPort), '--dapr-http-port', String(httpPort)], [process.execPath, RAW_APP]);
  const base = `http://127.0.0.1:${httpPort}`;
  await waitFor('run sidecar healthz', async () => (await httpRequest(`${base}/v1.0/healthz`, { timeoutMs: 1000 })).status === 204, { proc: run });
  await waitFor('app port', () => canConnect(appPort), { proc: run });

  const r = await httpRequest(`${base}/v1.0/invoke/raw-app/method/env`);
  assert.equal(r.status, 200, r.text);
  const env = r.json;
  assert.equal(env.APP_ID, 'raw-app');
  assert.equal(env.APP_PORT, String(appPort));
  assert.equal(env.DAPR_HTTP_PORT, String(httpPort));
  assert.match(env.DAPR_HTTP_ENDPOINT ?? '', new RegExp(`^http://(127\\.0\\.0\\.1|localhost):${httpPort}/?$`));
  const e = await httpRequest(`${base}/echo`, { method: 'POST', headers: { 'dapr-app-id': 'raw-app' }, body: 'via run' });
  assert.equal(e.json?.body, 'via run');
  assert.equal(e.json?.headers['dapr-caller-app-id'], 'raw-app', 'self-invocation is stamped caller = callee = self');

  await waitFor('prefixed app output', () => /^.+\[raw-app\] listening on/m.test(run.output()), { timeoutMs: 5000 });

  const kids = descendantPids(run.pid);
  assert.ok(kids.includes(env.pid), `app pid ${env.pid} is a descendant of run (${kids})`);
  run.signalSelf('SIGTERM');
  await run.waitExit(15000);
  await waitFor('children gone', () => kids.every((pid) => !pidAlive(pid)), { timeoutMs: 5000 }).catch(() => {
    throw new Error(`still alive after run exited: ${kids.filter(pidAlive)}`);
  });
  assert.equal(await canConnect(httpPort), false, 'sidecar port closed');
  assert.equal(await canConnect(appPort), false, 'app port closed');
});

h.test('run: the app exit code propagates', { skip: needsSidecar, timeout: 60000 }, async () => {
  const httpPort = await freePort();
  const run = startRun('exit3', ['--dapr-http-port', String(httpPort)], [process.execPath, '-e', 'setTimeout(() => process.exit(3), 200)']);
  const { code } = await run.waitExit(30000);
  assert.equal(code, 3);
});

h.test('run: SIGINT is forwarded to the app and its exit code returned', { skip: needsSidecar, timeout: 60000 }, async () => {
  const httpPort = await freePort();
  const script = "process.on('SIGINT', () => { console.log('got SIGINT'); process.exit(7); }); console.log('ready'); setInterval(() => {}, 1000);";
  const run = startRun('sigint-app', ['--dapr-http-port', String(httpPort)], [process.execPath, '-e', script]);
  await waitFor('app ready', () => /ready/.test(run.output()), { timeoutMs: 20000, proc: run });
  run.signalSelf('SIGINT');
  const { code } = await run.waitExit(15000);
  assert.match(run.output(), /got SIGINT/);
  assert.equal(code, 7);
});
