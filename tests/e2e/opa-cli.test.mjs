// `outrigger opa eval|test` (issue 6) as a user runs them: the seed's MCP policy (Rego v0, verbatim)
// decides for three agents and a batch, output and exit codes follow `opa eval`, errors carry the
// position, and `opa test` runs OPA-format cases with its thresholds. Real processes, real files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { OUTRIGGER_BIN } from './lib/harness.mjs';

const repo = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const seed = path.join(repo, 'bench/rego/seed.rego');
const skip = /fake-outrigger\.mjs$/.test(OUTRIGGER_BIN) ? 'the fake binary has no opa command' : false;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'opa-cli-'));

function opa(args) {
  const r = spawnSync(OUTRIGGER_BIN, ['opa', ...args], { encoding: 'utf8', timeout: 30000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function input(caller, body) {
  const headers = caller ? { 'Dapr-Caller-App-Id': caller, 'dapr-caller-app-id': caller } : {};
  const f = path.join(tmp, `in-${Math.random().toString(16).slice(2)}.json`);
  fs.writeFileSync(f, JSON.stringify({ request: { method: 'POST', path: '/mcp', path_parts: ['mcp'],
    raw_query: '', query: {}, headers, scheme: '', body: JSON.stringify(body) } }));
  return f;
}

const call = (name) => ({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: {} } });

function decide(caller, body) {
  const r = opa(['eval', '--v0-compatible', '-d', seed, '-i', input(caller, body), 'data.http.allow']);
  assert.equal(r.code, 0, r.err + r.out);
  return JSON.parse(r.out).result[0].expressions[0].value;
}

test('the seed policy decides per caller and tool', { skip }, () => {
  assert.equal(decide('analyst-agent', { jsonrpc: '2.0', id: 1, method: 'tools/list' }), true);
  assert.equal(decide('analyst-agent', call('get_inventory')), true);
  assert.equal(decide('analyst-agent', call('update_stock')), false);
  assert.equal(decide('ops-agent', call('update_stock')), true);
  assert.equal(decide('intruder-agent', call('get_inventory')), false);
  assert.equal(decide(null, call('get_inventory')), false);
  // A batch is an array: the seed policy reads body.method, which an array does not have.
  assert.equal(decide('analyst-agent', [call('get_inventory'), call('update_stock')]), false);
});

test('eval prints bindings like opa eval and no result when undefined', { skip }, () => {
  let r = opa(['eval', '--v0-compatible', '-d', seed, 'tools := data.http.allowed_tools[agent]']);
  assert.equal(r.code, 0, r.err);
  const res = JSON.parse(r.out).result;
  assert.deepEqual(res.map((x) => x.bindings.agent), ['analyst-agent', 'ops-agent']);
  assert.deepEqual(res[1].bindings.tools, ['get_inventory', 'list_products', 'update_stock']);
  r = opa(['eval', '--v0-compatible', '-d', seed, 'data.http.nothing']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), {});
});

test('errors are OPA-coded with file:line:col and exit 1', { skip }, () => {
  const bad = path.join(tmp, 'bad.rego');
  fs.writeFileSync(bad, 'package http\n\nallow if {\n  count(x) > 1\n}\n');
  let r = opa(['eval', '-d', bad, 'data.http.allow']);
  assert.equal(r.code, 1);
  const e = JSON.parse(r.out).errors[0];
  assert.equal(e.code, 'rego_unsafe_var_error');
  assert.match(e.message, /bad\.rego:4:3: .*var x is unsafe/);
  // v1 syntax by default: a v0 partial set head does not mean a set there, so say v0.
  r = opa(['eval', '--strict-builtin-errors', '-d', seed, '--v0-compatible', 'x := 1 / 0']);
  assert.equal(r.code, 1);
  assert.equal(JSON.parse(r.out).errors[0].code, 'eval_builtin_error');
});

test('opa test counts per directory and honours its thresholds', { skip }, () => {
  const dir = path.join(tmp, 'cases', 'mine');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'a.yaml'), [
    'cases:',
    '  - note: mine/pass',
    '    query: data.t.p = x',
    '    modules: ["package t\\np := 2 if input.a == 1"]',
    '    input: {a: 1}',
    '    want_result: [{x: 2}]',
    '  - note: mine/fail',
    '    query: data.t.p = x',
    '    modules: ["package t\\np := 3"]',
    '    want_result: [{x: 4}]',
    '',
  ].join('\n'));
  let r = opa(['test', path.join(tmp, 'cases')]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /mine\s+pass\s+1\s+fail\s+1\s+skip\s+0/);
  r = opa(['test', '--min-pass-ratio', '0.9', path.join(tmp, 'cases')]);
  assert.equal(r.code, 1);
  const expect = path.join(tmp, 'expected.txt');
  fs.writeFileSync(expect, 'mine 1\n');
  assert.equal(opa(['test', '--expect', expect, path.join(tmp, 'cases')]).code, 0);
  fs.writeFileSync(expect, 'mine 2\n');
  r = opa(['test', '--expect', expect, path.join(tmp, 'cases')]);
  assert.equal(r.code, 1);
  assert.match(r.err, /mine regressed: 1 passed, expected 2/);
});
