// cg-client.mjs — sends N MCP tools/call POSTs one after another over one keep-alive connection,
// byte for byte what bench/tools_call.lua makes wrk send, and checks every response is a 200.
//   node bench/cg-client.mjs PORT PATH N
// Used by bench/callgrind.sh, which counts the sidecars' instructions per request.
import net from 'node:net';

const [port, path, nArg] = process.argv.slice(2);
const n = Number(nArg);
const body =
  '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}';
const req = Buffer.from(
  `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: ${body.length}\r\n` +
    `Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\r\n${body}`,
);

const sock = net.connect(Number(port), '127.0.0.1');
let buf = Buffer.alloc(0);
let done = 0;
let bad = 0;

// One complete response at the front of buf: returns its length, or 0 when more bytes are needed.
function responseLength(b) {
  const end = b.indexOf('\r\n\r\n');
  if (end < 0) return 0;
  const head = b.subarray(0, end).toString('latin1');
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (!m) throw new Error(`response without content-length:\n${head}`);
  const total = end + 4 + Number(m[1]);
  if (b.length < total) return 0;
  if (!head.startsWith('HTTP/1.1 200')) bad++;
  return total;
}

sock.on('connect', () => sock.write(req));
sock.on('data', (d) => {
  buf = Buffer.concat([buf, d]);
  for (let len; (len = responseLength(buf)) > 0; ) {
    buf = buf.subarray(len);
    done++;
    if (done === n) {
      sock.end();
      if (bad > 0) {
        console.error(`${bad} of ${n} responses were not 200`);
        process.exitCode = 1;
      }
      return;
    }
    sock.write(req);
  }
});
sock.on('error', (e) => {
  console.error(`client: ${e.message} after ${done} responses`);
  process.exitCode = 1;
});
