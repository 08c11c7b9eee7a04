// Raw HTTP helpers built on node:http, for requests fetch cannot make (header name case kept,
// duplicate header lines) and for reading SSE bodies.
import http from 'node:http';

/**
 * One HTTP/1.1 request without connection reuse. headers: array of [name, value] pairs (case and
 * duplicates kept on the wire) or a plain object. Resolves {status, headers, rawHeaders, body}
 * (body: Buffer). Rejects on socket errors, including a response cut off mid-body.
 */
export function rawRequest(url, { method = 'GET', headers = [], body, timeoutMs = 10000 } = {}) {
  const u = new URL(url);
  const pairs = Array.isArray(headers) ? [...headers] : Object.entries(headers);
  const buf = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
  // With an array of headers node:http adds no Host header; HTTP/1.1 requires one.
  if (!pairs.some(([k]) => k.toLowerCase() === 'host')) pairs.unshift(['host', u.host]);
  if (buf && !pairs.some(([k]) => k.toLowerCase() === 'content-length')) pairs.push(['content-length', String(buf.length)]);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, method, path: u.pathname + u.search, headers: pairs, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }));
        res.on('error', reject);
        res.on('aborted', () => reject(new Error('response aborted')));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(buf);
  });
}

/** Parse an SSE body into [{event, id, data, retry}] (data lines joined with "\n"). */
export function parseSse(text) {
  const events = [];
  for (const block of text.replace(/\r\n?/g, '\n').split('\n\n')) {
    if (!block.trim()) continue;
    const ev = { event: 'message', id: undefined, data: '', retry: undefined };
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') ev.event = value;
      else if (field === 'id') ev.id = value;
      else if (field === 'retry') ev.retry = Number(value);
    }
    ev.data = data.join('\n');
    events.push(ev);
  }
  return events;
}

/**
 * JSON-RPC messages in a Streamable HTTP response body (application/json or text/event-stream).
 */
export function jsonRpcMessages(res) {
  const text = res.body.toString('utf8');
  const ct = String(res.headers['content-type'] ?? '');
  if (ct.startsWith('text/event-stream')) {
    return parseSse(text)
      .filter((e) => e.data.trim())
      .map((e) => JSON.parse(e.data));
  }
  if (!text) return [];
  const v = JSON.parse(text);
  return Array.isArray(v) ? v : [v];
}

/** Headers a Streamable HTTP client sends with a JSON-RPC POST (as [name, value] pairs). */
export function mcpPostHeaders({ sessionId, protocolVersion = '2025-11-25' } = {}) {
  const h = [
    ['content-type', 'application/json'],
    ['accept', 'application/json, text/event-stream'],
    ['mcp-protocol-version', protocolVersion],
  ];
  if (sessionId) h.push(['mcp-session-id', sessionId]);
  return h;
}
