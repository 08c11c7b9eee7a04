// @modelcontextprotocol/server-everything behind sidecar B (streamableHttp and sse modes), driven
// by the SDK client through sidecar A; and the official MCP conformance suite (server scenarios)
// run against server-everything directly and through the two sidecars: the scores must be equal.
import { before } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, packageFile, runConformance, conformanceCommand, HOOK_TIMEOUT } from './lib/harness.mjs';

const EVERYTHING = packageFile('@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
const h = new Harness();
let topo;

before(async () => {
  topo = await h.topology({
    callerId: 'my-agent',
    apps: [
      { appId: 'everything', script: EVERYTHING, args: ['streamableHttp'] },
      { appId: 'everything-sse', script: EVERYTHING, args: ['sse'] },
    ],
  });
}, HOOK_TIMEOUT);

async function basic(client) {
  assert.ok(client.getServerVersion()?.name, 'server info');
  const { tools } = await client.listTools();
  assert.ok(tools.length >= 10, `only ${tools.length} tools`);
  assert.ok(tools.some((t) => t.name === 'echo'));
  const r = await client.callTool({ name: 'echo', arguments: { message: 'hello everything' } });
  assert.equal(r.content[0].type, 'text');
  assert.match(r.content[0].text, /hello everything/);
}

h.test('server-everything streamableHttp via invoke URL', async () => {
  const { client } = await h.mcpClient(topo.invokeUrl('everything', 'mcp'));
  await basic(client);
  await client.close();
});

h.test('server-everything streamableHttp via dapr-app-id header', async () => {
  const { url, headers } = topo.headerForm('everything', 'mcp');
  const { client } = await h.mcpClient(url, { headers });
  await basic(client);
  await client.close();
});

h.test('server-everything legacy sse via dapr-app-id header', async () => {
  // Header form for the reason given in mcp-legacy-sse.test.mjs (relative endpoint URL).
  const { url, headers } = topo.headerForm('everything-sse', 'sse');
  const { client } = await h.mcpClient(url, { kind: 'sse', headers });
  await basic(client);
  await client.close();
});

h.test(
  'MCP conformance (server scenarios): same score direct and through the sidecars',
  { timeout: 600000, skip: conformanceCommand('http://x').error ?? false },
  async () => {
    const directUrl = `http://127.0.0.1:${topo.app('everything').port}/mcp`;
    const direct = await runConformance(h, directUrl, { name: 'conformance:direct' });
    const proxied = await runConformance(h, topo.invokeUrl('everything', 'mcp'), { name: 'conformance:proxied' });
    const diff = [...new Set([...direct.scenarios.keys(), ...proxied.scenarios.keys()])]
      .filter((s) => direct.scenarios.get(s) !== proxied.scenarios.get(s))
      .map((s) => `${s}: direct ${direct.scenarios.get(s)} vs proxied ${proxied.scenarios.get(s)}`);
    assert.ok(direct.passed > 0 && direct.scenarios.size >= 20, `direct run looks broken: ${direct.passed} passed, ${direct.scenarios.size} scenarios`);
    assert.deepEqual(
      { passed: proxied.passed, failed: proxied.failed },
      { passed: direct.passed, failed: direct.failed },
      `Total differs; scenario differences:\n${diff.join('\n')}`,
    );
    assert.deepEqual(diff, [], 'per-scenario results differ');
  },
);
