#!/usr/bin/env bash
# endpoints.sh — what an HTTPEndpoint costs compared with the app channel, through one sidecar.
#
#   bench/endpoints.sh          # ~1 minute; prints one line per path (requests/s, p50, p99)
#
# Upstream: nginx answering a fixed JSON-RPC result over HTTP and over HTTPS (a throwaway CA, a
# certificate for "localhost"). One sidecar (build/outrigger, --workers 1, mTLS off) with
# --app-port = the HTTP upstream and two HTTPEndpoints (http://127.0.0.1:U, https://localhost:S
# with clientTLS.rootCA). Paths, interleaved ROUNDS times, wrk -t1 -cCONNS -dSECS each:
#   direct        wrk → upstream /mcp
#   app channel   wrk → sidecar /v1.0/invoke/<own app id>/method/mcp → upstream
#   endpoint      wrk → sidecar /v1.0/invoke/up-http/method/mcp → upstream (HTTPEndpoint)
#   endpoint tls  wrk → sidecar /v1.0/invoke/up-https/method/mcp → upstream over TLS (pooled)
# Needs wrk, nginx, openssl, curl. Everything it starts is stopped on exit.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$BENCH_DIR/.."
BIN=${OUTRIGGER_BIN:-$PWD/build/outrigger}
SECS=${SECS:-5}
CONNS=${CONNS:-16}
ROUNDS=${ROUNDS:-3}
BENCH_NAME=endpoints
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
need_tools wrk nginx openssl curl ss
[[ -x $BIN ]] || die "no sidecar binary at $BIN (scripts/build.sh release)"
bench_tmp outrigger-bench-ep
free_port UP
free_port UPS
free_port HTTP
free_port METRICS

cd "$TMP"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
  -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -keyout server.key -out server.csr 2>/dev/null
echo 'subjectAltName=DNS:localhost' >ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
  -extfile ext.cnf -out server.pem 2>/dev/null
cat >nginx.conf <<EOF
worker_processes 1;
daemon off;
error_log $TMP/error.log;
pid $TMP/nginx.pid;
events { worker_connections 1024; }
http {
  log_format c "\$connection \$connection_requests \$server_port";
  access_log ${ACCESS_LOG:-off} ${ACCESS_LOG:+c};
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$UP;
    listen 127.0.0.1:$UPS ssl;
    ssl_certificate $TMP/server.pem;
    ssl_certificate_key $TMP/server.key;
    location / {
      default_type application/json;
      return 200 '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Echo: hi"}]}}';
    }
  }
}
EOF
spawn "$TMP/nginx.log" nginx -c "$TMP/nginx.conf" -p "$TMP"
mkdir res
{
  printf 'apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: up-http}\n'
  printf 'spec:\n  baseUrl: http://127.0.0.1:%s\n---\n' "$UP"
  printf 'apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: up-https}\n'
  printf 'spec:\n  baseUrl: https://localhost:%s\n  clientTLS:\n    rootCA:\n      value: |\n' "$UPS"
  sed 's/^/        /' ca.pem
} >res/endpoints.yaml
spawn "$TMP/sidecar.log" env OUTRIGGER_HOME="$TMP/home" "$BIN" sidecar --app-id bench-app \
  --app-port "$UP" --dapr-http-port "$HTTP" --metrics-port "$METRICS" --workers 1 \
  --enable-mtls=false --resources-path "$TMP/res" --log-level warn
wait_healthz "$HTTP" "$SPAWNED" sidecar "$TMP/sidecar.log"
for path in "http://127.0.0.1:$UP/mcp" "http://127.0.0.1:$HTTP/v1.0/invoke/bench-app/method/mcp" \
  "http://127.0.0.1:$HTTP/v1.0/invoke/up-http/method/mcp" \
  "http://127.0.0.1:$HTTP/v1.0/invoke/up-https/method/mcp"; do
  curl -fsS -X POST -d '{}' "$path" >/dev/null || die "no answer from $path"
done
cd - >/dev/null
for r in $(seq "$ROUNDS"); do
  for name in direct app-channel endpoint endpoint-tls; do
    case $name in
      direct) url="http://127.0.0.1:$UP/mcp" ;;
      app-channel) url="http://127.0.0.1:$HTTP/v1.0/invoke/bench-app/method/mcp" ;;
      endpoint) url="http://127.0.0.1:$HTTP/v1.0/invoke/up-http/method/mcp" ;;
      endpoint-tls) url="http://127.0.0.1:$HTTP/v1.0/invoke/up-https/method/mcp" ;;
    esac
    line=$(wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s bench/tools_call.lua "$url" | grep WRKSTAT)
    echo "round $r $name $line" | awk '{
      for (i = 4; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "round %s %-13s rps=%8.0f p50=%5d us p99=%6d us errors=%d\n", $2, $3, v["rps"],
             v["p50_us"], v["p99_us"], v["err_connect"] + v["err_read"] + v["err_status"] + v["err_timeout"]
    }'
  done
done
