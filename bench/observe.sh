#!/usr/bin/env bash
# bench/observe.sh — the cost of observability (issue 7): throughput of an MCP tools/call POST
# through two sidecars with metrics + tracing at samplingRate 1 (spans exported over OTLP/HTTP to a
# local receiver, Prometheus text scraped every second) vs both off (--enable-metrics=false, no
# tracing), interleaved in the same run. Target: on/off >= 0.9. Writes bench/results/observe.md.
#
#   bench/observe.sh                       # ~1 minute on 2 cores
#   ROUNDS=5 DURATION=10 bench/observe.sh  # steadier
#
# Both pairs run with --enable-mtls=false, so only the observability work differs. Everything
# listens on 127.0.0.1; every process started here is stopped on exit.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
OUTRIGGER_BIN=${OUTRIGGER_BIN:-$REPO/build/outrigger}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
RESULTS=${RESULTS:-$BENCH_DIR/results/observe.md}
ON_TRACING=${ON_TRACING:-1}         # 0: the "on" pair has metrics only (to split the cost)
TARGET=0.9
MCP_RESULT='{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}'

BENCH_NAME=observe
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
need_tools wrk nginx python3 curl ss
[[ -x $OUTRIGGER_BIN ]] || die "no sidecar binary at $OUTRIGGER_BIN (scripts/build.sh release)"
bench_tmp outrigger-obs-bench

# The app: nginx returning a fixed JSON-RPC result (what is measured is the sidecars).
free_port UP
start_upstream "$UP"

# The OTLP/HTTP receiver: counts spans, answers 200 (a collector that keeps up). It shares the
# CPUs with what is measured, so it is as cheap as a receiver can be: raw sockets, one reused read
# buffer per connection, HTTP/1.1 with Content-Length bodies only (what the sidecar sends), spans
# counted as '"spanId":' keys with bytes.count (no parsing, no copies). A Node http server that
# did the same cost 1.1 CPU-us per span received, this one 0.4 (600 POSTs of 512 spans).
free_port OTLP
cat >"$TMP/otlp.py" <<'EOF'
import socket, sys, threading
KEY = b'"spanId":'
spans = 0
lock = threading.Lock()
def serve(c):
    global spans
    buf = bytearray(1 << 20); mv = memoryview(buf); have = 0
    try:
        while True:
            while (e := buf.find(b'\r\n\r\n', 0, have)) < 0:
                n = c.recv_into(mv[have:]) if have < len(buf) else 0
                if n == 0: return
                have += n
            head = bytes(buf[:e]).lower()
            url = head.split(b' ', 2)[1]
            i = head.find(b'\r\ncontent-length:')
            left = int(head[i + 17:].split(b'\r\n', 1)[0]) if i >= 0 else 0
            pos = start = e + 4; keep = n_spans = 0
            while True:  # the body, a buffer at a time; a key cut between reads is in 'keep'
                end = min(have, pos + left)
                n_spans += buf.count(KEY, pos - keep, end)
                left -= end - pos
                if left == 0:
                    buf[0:have - end] = buf[end:have]; have -= end
                    break
                keep = min(len(KEY) - 1, end - start)
                buf[0:keep] = buf[end - keep:end]; have = pos = keep; start = 0
                n = c.recv_into(mv[have:])
                if n == 0: return
                have += n
            with lock:
                spans += n_spans
                out = str(spans).encode() if url == b'/count' else b'{}'
            c.sendall(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s' % (len(out), out))
    except OSError:
        pass
    finally:
        c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
spawn "$TMP/otlp.log" python3 "$TMP/otlp.py" "$OTLP"
cat >"$TMP/on.yaml" <<EOF
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: observe-on
spec:
  metrics:
    enabled: true
  tracing:
    samplingRate: "$ON_TRACING"
    otel:
      endpointAddress: 127.0.0.1:$OTLP
      protocol: http
      isSecure: false
EOF

declare -A URL=() METRICS=() PAIR_PIDS=()
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; } # utime+stime
start_pair() { # NAME FLAGS...
  local name=$1 home=$TMP/home-$1 bh bi bm ah ai am
  shift
  mkdir -p "$home"
  free_port bh; free_port bi; free_port bm; free_port ah; free_port ai; free_port am
  spawn "$TMP/$name-B.log" env OUTRIGGER_HOME="$home" OTEL_BSP_SCHEDULE_DELAY=1000 "$OUTRIGGER_BIN" \
    sidecar --app-id mcp-server --app-port "$UP" --dapr-http-port "$bh" --dapr-internal-port "$bi" \
    --metrics-port "$bm" --log-level warn --enable-mtls=false "$@"
  wait_healthz "$bh" "$SPAWNED" "$name B" "$TMP/$name-B.log"
  PAIR_PIDS[$name]=$SPAWNED
  spawn "$TMP/$name-A.log" env OUTRIGGER_HOME="$home" OTEL_BSP_SCHEDULE_DELAY=1000 "$OUTRIGGER_BIN" \
    sidecar --app-id bench-agent --dapr-http-port "$ah" --dapr-internal-port "$ai" \
    --metrics-port "$am" --log-level warn --enable-mtls=false "$@"
  wait_healthz "$ah" "$SPAWNED" "$name A" "$TMP/$name-A.log"
  PAIR_PIDS[$name]="$SPAWNED ${PAIR_PIDS[$name]}"
  URL[$name]="http://127.0.0.1:$ah/v1.0/invoke/mcp-server/method/mcp"
  METRICS[$name]="$am $bm"
}
start_pair off --enable-metrics=false
start_pair on --config "$TMP/on.yaml"
for p in off on; do
  body=$(curl -s -X POST -H 'content-type: application/json' --data '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}' "${URL[$p]}")
  [[ $body == "$MCP_RESULT" ]] || die "pair $p answered: $body"
done

# A Prometheus-like scraper on the "on" pair for the whole run (every second, both sidecars).
(while sleep 1; do for m in ${METRICS[on]}; do curl -s -o /dev/null "http://127.0.0.1:$m/metrics"; done; done) &
PIDS+=("$!")

RAW=$TMP/raw.tsv
: >"$RAW"
run() { # ROUND PATH
  local out
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION"s --timeout 2s --latency -s "$BENCH_DIR/tools_call.lua" "${URL[$2]}" 2>&1) ||
    { echo "$out" >&2; die "wrk failed"; }
  out=$(grep '^WRKSTAT' <<<"$out")
  rps=$(sed -n 's/.* rps=\([^ ]*\).*/\1/p' <<<"$out")
  p50=$(sed -n 's/.* p50_us=\([^ ]*\).*/\1/p' <<<"$out")
  errs=$(sed -n 's/.* err_status=\([^ ]*\).*/\1/p' <<<"$out")
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$rps" "$p50" "$errs" >>"$RAW"
  log "round $1 $2: $rps req/s, p50 $p50 us, non-2xx $errs"
}
run 0 off; run 0 on # warm-up (not counted)
: >"$RAW"
OTLP_PID=$(ss -Htlnp "( sport = :$OTLP )" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)
declare -A CPU0=()
for p in ${PAIR_PIDS[off]} ${PAIR_PIDS[on]} $OTLP_PID; do CPU0[$p]=$(cpu_s "$p"); done
for r in $(seq "$ROUNDS"); do
  if ((r % 2)); then run "$r" off; run "$r" on; else run "$r" on; run "$r" off; fi
done
sleep 2 # one more export interval
cpu_of() { local t=0 p; for p in "$@"; do t=$(awk -v t="$t" -v a="$(cpu_s "$p")" -v b="${CPU0[$p]}" 'BEGIN { printf "%.2f", t + a - b }'); done; echo "$t"; }
CPU_OFF=$(cpu_of ${PAIR_PIDS[off]}) CPU_ON=$(cpu_of ${PAIR_PIDS[on]}) CPU_OTLP=$(cpu_of $OTLP_PID)
REQ_OFF=$(awk -F'\t' '$2=="off" {n += $3} END {print n}' "$RAW") REQ_ON=$(awk -F'\t' '$2=="on" {n += $3} END {print n}' "$RAW")
US_OFF=$(awk -v c="$CPU_OFF" -v r="$REQ_OFF" -v d="$DURATION" 'BEGIN { printf "%.1f", c * 1e6 / (r * d) }')
US_ON=$(awk -v c="$CPU_ON" -v r="$REQ_ON" -v d="$DURATION" 'BEGIN { printf "%.1f", c * 1e6 / (r * d) }')
median() { sort -g | awk '{a[NR]=$1} END { if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
med() { awk -F'\t' -v p="$1" -v c="$2" '$2==p {print $c}' "$RAW" | median; }
OFF=$(med off 3) ON=$(med on 3)
RATIO=$(awk -v a="$ON" -v b="$OFF" 'BEGIN { printf "%.3f", a / b }')
SPANS=$(curl -s "http://127.0.0.1:$OTLP/count")
DROPPED=0
for m in ${METRICS[on]}; do
  d=$(curl -s "http://127.0.0.1:$m/metrics" | sed -n 's/^outrigger_trace_spans_total{.*outcome="dropped"} \([0-9]*\)$/\1/p')
  DROPPED=$((DROPPED + ${d:-0}))
done
VERDICT=$(awk -v r="$RATIO" -v t="$TARGET" 'BEGIN { print (r >= t) ? "**PASS**" : "**FAIL**" }')
mkdir -p "$(dirname "$RESULTS")"
{
  echo "# Observability cost ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $ROUNDS rounds x ${DURATION}s, wrk -t$THREADS -c$CONNS)"
  echo
  echo "| pair | median req/s | median p50 (us) | sidecar CPU per request (us, both sidecars) |"
  echo "|---|---|---|---|"
  echo "| metrics + tracing off | $OFF | $(med off 4) | $US_OFF |"
  echo "| metrics + tracing samplingRate $ON_TRACING (OTLP export, scraped every 1 s) | $ON | $(med on 4) | $US_ON |"
  echo
  echo "Ratio on/off: **$RATIO** (target >= $TARGET: $VERDICT). Spans received by the OTLP receiver: $SPANS; dropped at the sidecars (queue full): $DROPPED. CPU seconds of the OTLP receiver (same machine) during the rounds: $CPU_OTLP."
} | tee "$RESULTS"
