-- tools_call.lua — wrk script: an MCP tools/call JSON-RPC POST, and one machine-readable summary line.
--   wrk -t1 -c1 -d5s --latency -s bench/tools_call.lua http://127.0.0.1:PORT/PATH
-- The URL's path is used as is. No response() callback: it would make wrk parse every body in Lua
-- and add client-side cost to every path; run.sh checks one response per path with curl instead,
-- and wrk's own counters report non-2xx/3xx statuses (errors.status).

wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"

-- One line that run.sh parses. Latencies in microseconds (wrk's unit).
function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "WRKSTAT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d mean_us=%.1f max_us=%d" ..
    " err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
