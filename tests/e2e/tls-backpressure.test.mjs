// Regression: a request body paused for backpressure on the mTLS hop must resume even when its
// last TLS records were already read into OpenSSL (no socket event will announce them). Before
// the fix in net/server.c (start_reading pumped TLS input before reading was on again), a chunked
// 256 KiB body through two one-worker sidecars hung within 10–20 requests.
import { before } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, RAW_APP, HOOK_TIMEOUT, needsSidecar } from './lib/harness.mjs';

const h = new Harness();
let url;

before(async () => {
  if (needsSidecar) return;
  const home = h.tmpHome();
  const app = await h.startNodeApp('raw-app', RAW_APP);
  await h.startSidecar({ appId: 'raw-app', appPort: app.port, home, extraArgs: ['--workers', '1'] });
  const caller = await h.startSidecar({ appId: 'my-agent', home, extraArgs: ['--workers', '1'] });
  url = `${caller.url}/v1.0/invoke/raw-app/method/echo`;
}, HOOK_TIMEOUT);

h.test('60 chunked 256 KiB bodies over mTLS, one worker per sidecar, each arrives whole', { skip: needsSidecar }, async () => {
  for (let n = 0; n < 60; n++) {
    const parts = Array.from({ length: 64 }, (_, i) => Buffer.alloc(4096, 97 + ((i + n) % 26)));
    const body = new ReadableStream({
      start(c) {
        for (const p of parts) c.enqueue(p);
        c.close();
      },
    });
    const res = await fetch(url, { method: 'POST', body, duplex: 'half', signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200, `request ${n}`);
    const e = await res.json();
    assert.equal(e.bodyLength, 64 * 4096, `request ${n}`);
    assert.equal(e.body, Buffer.concat(parts).toString(), `request ${n}`);
  }
});
