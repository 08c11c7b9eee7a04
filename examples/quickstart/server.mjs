// An ordinary MCP server (official TypeScript SDK, streamable HTTP at /mcp). It knows nothing about
// Outrigger: its sidecar forwards calls to it and tells it who called in dapr-caller-app-id.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

const port = Number(process.env.APP_PORT || 8000);
const sessions = new Map();

function newServer() {
  const server = new McpServer({ name: 'inventory', version: '1.0.0' });
  server.registerTool('get_inventory', {
    description: 'Units in stock for an item',
    inputSchema: { item: z.string() },
  }, async ({ item }, extra) => {
    const caller = extra.requestInfo?.headers?.['dapr-caller-app-id'] ?? 'unknown';
    return { content: [{ type: 'text', text: `${item}: 42 units (asked by ${caller})` }] };
  });
  server.registerTool('update_stock', {
    description: 'Change the units in stock for an item',
    inputSchema: { item: z.string(), delta: z.number() },
  }, async ({ item, delta }) => ({ content: [{ type: 'text', text: `${item} changed by ${delta}` }] }));
  return server;
}

http.createServer(async (req, res) => {
  if (!req.url.startsWith('/mcp')) { res.writeHead(404).end(); return; }
  const id = req.headers['mcp-session-id'];
  let transport = id && sessions.get(id);
  if (!transport) {
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (sid) => sessions.set(sid, transport),
    });
    transport.onclose = () => transport.sessionId && sessions.delete(transport.sessionId);
    await newServer().connect(transport);
  }
  await transport.handleRequest(req, res);
}).listen(port, '127.0.0.1', () => console.log(`MCP server listening on 127.0.0.1:${port}/mcp`));
