#!/usr/bin/env bash
# bench/observe-cg.sh — instructions per request of the observability work, deterministic (the
# machine is shared and noisy, so throughput alone cannot tell small changes apart).
#
#   bench/observe-cg.sh [off|on] [N]     # default: both modes, N=2000
#
# One sidecar pair (--workers 1, --enable-mtls=false) in front of nginx, both sidecars under
# callgrind with instrumentation switched on after 200 warm-up requests; N tools/call POSTs from
# one keep-alive client; then one export interval, and the instruction counts (exporter thread
# included) are dumped. "on" = metrics + tracing samplingRate 1 exported to the same counting
# receiver as bench/observe.sh; "off" = --enable-metrics=false, no tracing. Prints Ir per request
# of the caller (A) and server (B) sidecar; the callgrind files stay in $OUT for callgrind_annotate.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${OUTRIGGER_BIN:-$BENCH_DIR/../build/outrigger}
MODES=${1:-off on} N=${2:-2000}
OUT=${OUT:-$(mktemp -d /tmp/outrigger-obs-cg.XXXXXX)}
for tool in valgrind callgrind_control nginx python3 curl; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(port) OTLP=$(port)
mkdir -p "$OUT/ng/tmp"
cat >"$OUT/ng/nginx.conf" <<EOT
daemon off; worker_processes 1; pid $OUT/ng/nginx.pid; error_log $OUT/ng/err.log warn;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $OUT/ng/tmp; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { default_type application/json;
    return 200 '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}'; } } }
EOT
nginx -c "$OUT/ng/nginx.conf" -e "$OUT/ng/err.log" & PIDS+=($!)
# The receiver of bench/observe.sh, taken from it so that both measure the same thing.
sed -n '/^cat >"\$TMP\/otlp.py"/,/^EOF$/p' "$BENCH_DIR/observe.sh" | sed '1d;$d' >"$OUT/otlp.py"
python3 "$OUT/otlp.py" "$OTLP" & PIDS+=($!)
cat >"$OUT/client.py" <<'EOT'
import http.client, sys
body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}'
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=60)
for _ in range(int(sys.argv[2])):
    c.request('POST', '/v1.0/invoke/mcp-server/method/mcp', body,
              {'content-type': 'application/json', 'accept': 'application/json, text/event-stream'})
    r = c.getresponse(); r.read()
    if r.status != 200: sys.exit('status %d' % r.status)
EOT
cat >"$OUT/on.yaml" <<EOT
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: on}
spec:
  metrics: {enabled: true}
  tracing:
    samplingRate: "1"
    otel: {endpointAddress: 127.0.0.1:$OTLP, protocol: http, isSecure: false}
EOT
healthy() { [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/v1.0/healthz") == 204 ]]; }
for m in $MODES; do
  case $m in off) FL=(--enable-metrics=false) ;; on) FL=(--config "$OUT/on.yaml") ;; *) echo "mode: off|on" >&2; exit 2 ;; esac
  BH=$(port) BI=$(port) BM=$(port) AH=$(port) AI=$(port) AM=$(port)
  mkdir -p "$OUT/$m/home"
  VG=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$OUT/$m/cg.%p")
  env OUTRIGGER_HOME="$OUT/$m/home" OTEL_BSP_SCHEDULE_DELAY=1000 "${VG[@]}" "$BIN" sidecar \
    --app-id mcp-server --app-port "$UP" --dapr-http-port "$BH" --dapr-internal-port "$BI" \
    --metrics-port "$BM" --log-level "${LOG_LEVEL:-warn}" --enable-mtls=false --workers 1 "${FL[@]}" \
    >"$OUT/$m/B.log" 2>&1 & PB=$!; PIDS+=($PB)
  env OUTRIGGER_HOME="$OUT/$m/home" OTEL_BSP_SCHEDULE_DELAY=1000 "${VG[@]}" "$BIN" sidecar \
    --app-id bench-agent --dapr-http-port "$AH" --dapr-internal-port "$AI" --metrics-port "$AM" \
    --log-level "${LOG_LEVEL:-warn}" --enable-mtls=false --workers 1 "${FL[@]}" \
    >"$OUT/$m/A.log" 2>&1 & PA=$!; PIDS+=($PA)
  for _ in $(seq 300); do healthy "$AH" && healthy "$BH" && break; sleep 0.2; done
  python3 "$OUT/client.py" "$AH" 200
  sleep 1.5
  callgrind_control -i on "$PA" >/dev/null 2>&1; callgrind_control -i on "$PB" >/dev/null 2>&1
  python3 "$OUT/client.py" "$AH" "$N"
  sleep 2.5 # one export interval
  callgrind_control -d "$PA" >/dev/null 2>&1; callgrind_control -d "$PB" >/dev/null 2>&1
  for s in A B; do
    p=$PA; [[ $s == B ]] && p=$PB
    ir=$(sed -n 's/^summary: //p' "$OUT/$m/cg.$p.1")
    echo "$m $s: $((ir / N)) Ir per request ($OUT/$m/cg.$p.1)"
  done
  kill -TERM "$PA" "$PB"; wait "$PA" "$PB" 2>/dev/null || true
done
