#!/usr/bin/env node
// The inventory MCP server of the per-tool authorization tests: official SDK (McpServer),
// stateless streamable HTTP at /mcp on 127.0.0.1:$APP_PORT.
//
//   node apps/inventory-server.mjs [--json]
//
// --json: responses are application/json (enableJsonResponse); default: text/event-stream.
// Tools: get_inventory {sku}, list_products, get_schema, update_stock {sku, delta}, drop_table {name}.
// Every tool run prints "[inventory] ran <tool> caller=<dapr-caller-app-id>" (tests use it to prove a
// refused call never ran).
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

const JSON_MODE = process.argv.includes('--json');
const PORT = Number(process.env.APP_PORT ?? process.env.PORT);

function buildServer(caller) {
  const server = new McpServer({ name: 'inventory', version: '1.0.0' }, { capabilities: { tools: {} } });
  const ran = (tool, text) => {
    console.log(`[inventory] ran ${tool} caller=${caller}`);
    return { content: [{ type: 'text', text }] };
  };
  server.registerTool('get_inventory', { description: 'Stock level of a product', inputSchema: { sku: z.string() } }, async ({ sku }) => ran('get_inventory', `${sku}: 42`));
  server.registerTool('list_products', { description: 'All products' }, async () => ran('list_products', 'widget, gadget'));
  server.registerTool('get_schema', { description: 'The inventory schema' }, async () => ran('get_schema', 'sku text, qty int'));
  server.registerTool('update_stock', { description: 'Change a stock level', inputSchema: { sku: z.string(), delta: z.number() } }, async ({ sku, delta }) => ran('update_stock', `${sku} += ${delta}`));
  server.registerTool('drop_table', { description: 'Drop a table', inputSchema: { name: z.string() } }, async ({ name }) => ran('drop_table', `dropped ${name}`));
  return server;
}

const httpServer = http.createServer(async (req, res) => {
  if (req.url === '/healthz') return res.writeHead(200).end('ok');
  if (!req.url.startsWith('/mcp')) return res.writeHead(404).end();
  if (req.method !== 'POST') return res.writeHead(405, { allow: 'POST' }).end();
  const chunks = [];
  for await (const c of req) chunks.push(c);
  let body;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return res.writeHead(400).end('bad json');
  }
  const server = buildServer(req.headers['dapr-caller-app-id'] ?? '-');
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: JSON_MODE });
  res.on('close', () => {
    transport.close();
    server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, body);
});
httpServer.listen(PORT, '127.0.0.1', () => console.log(`[inventory] listening on ${PORT} json=${JSON_MODE}`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
