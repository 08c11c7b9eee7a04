// An agent using the official MCP client, unchanged: it only points the URL at its own sidecar.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const sidecar = `http://127.0.0.1:${process.env.DAPR_HTTP_PORT || 3500}`;
const url = new URL(`${sidecar}/v1.0/invoke/mcp-server/method/mcp`);

const client = new Client({ name: 'my-agent', version: '1.0.0' });
await client.connect(new StreamableHTTPClientTransport(url));
const { tools } = await client.listTools();
console.log('tools:', tools.map((t) => t.name).join(', '));
const result = await client.callTool({ name: 'get_inventory', arguments: { item: 'widgets' } });
console.log('result:', result.content[0].text);
// The server's policy lets my-agent read the inventory but not change it.
try {
  await client.callTool({ name: 'update_stock', arguments: { item: 'widgets', delta: -5 } });
  console.log('update_stock: allowed (unexpected)');
  process.exitCode = 1;
} catch (err) {
  console.log('update_stock: refused by the policy,', err.code ?? '', String(err.message).split('\n')[0]);
}
await client.close();
