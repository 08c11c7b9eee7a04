#!/usr/bin/env bash
# bench/middleware.sh — the cost of the middleware pipeline (issues 5 and 6): throughput of an MCP
# tools/call POST through two sidecars with, on the server's appHttpPipeline,
#   off    — no pipeline
#   bearer — middleware.http.bearer (RS256 token from a local JWKS; verified once, then cached)
#   opa    — middleware.http.opa with Dapr's documented MCP policy (readBody, json.unmarshal)
# interleaved in the same run. Targets: bearer/off >= 0.9, opa/off >= 0.85. Writes
# bench/results/middleware.md.
#
#   bench/middleware.sh                       # ~1.5 minutes on 2 cores
#   ROUNDS=5 DURATION=10 bench/middleware.sh  # steadier
#
# All pairs run with --enable-mtls=false, so only the middleware differs. Everything listens on
# 127.0.0.1; every process started here is stopped on exit.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
OUTRIGGER_BIN=${OUTRIGGER_BIN:-$REPO/build/outrigger}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
RESULTS=${RESULTS:-$BENCH_DIR/results/middleware.md}
MCP_RESULT='{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}'

BENCH_NAME=middleware
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
need_tools wrk nginx node curl ss
[[ -x $OUTRIGGER_BIN ]] || die "no sidecar binary at $OUTRIGGER_BIN (scripts/build.sh release)"
[[ -d $REPO/tests/e2e/node_modules/jose ]] || die "npm packages missing (scripts/install-deps.sh)"
bench_tmp outrigger-mw-bench

# The app (nginx, fixed JSON-RPC result) and the JWKS file server.
free_port UP
free_port KEYS
mkdir -p "$TMP/www"
start_upstream "$UP" "  server {
    listen 127.0.0.1:$KEYS;
    root $TMP/www;
    default_type application/json;
  }"

# A signing key, its JWKS and one token (RS256, an hour long).
ISSUER="http://127.0.0.1:$KEYS"
TOKEN=$(cd "$REPO/tests/e2e" && node --input-type=module -e "
import { generateKeyPair, exportJWK, SignJWT } from 'jose';
import fs from 'node:fs';
const { privateKey, publicKey } = await generateKeyPair('RS256');
const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'RS256', use: 'sig' };
fs.writeFileSync('$TMP/www/jwks.json', JSON.stringify({ keys: [jwk] }));
const now = Math.floor(Date.now() / 1000);
process.stdout.write(await new SignJWT({ sub: 'bench-agent' }).setProtectedHeader({ alg: 'RS256', kid: 'bench' })
  .setIssuer('$ISSUER').setAudience('mcp-server').setIssuedAt(now).setExpirationTime(now + 3600).sign(privateKey));
")
chmod a+rx "$TMP" "$TMP/www" && chmod a+r "$TMP/www/jwks.json" # nginx workers may run as nobody

# Resources of each server flavour.
mk_res() { # NAME COMPONENT-YAML HANDLER-TYPE
  mkdir -p "$TMP/res-$1"
  printf '%s\n' "$2" >"$TMP/res-$1/component.yaml"
  printf '%s\n' "apiVersion: dapr.io/v1alpha1" "kind: Configuration" "metadata:" "  name: $1" "spec:" \
    "  appHttpPipeline:" "    handlers:" "    - name: mw" "      type: $3" >"$TMP/res-$1/config.yaml"
}
mk_res bearer "apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: mw
spec:
  type: middleware.http.bearer
  version: v1
  metadata:
  - name: issuer
    value: \"$ISSUER\"
  - name: audience
    value: mcp-server
  - name: jwksURL
    value: \"$ISSUER/jwks.json\"" middleware.http.bearer
# Dapr's documented MCP policy, with the bench caller among the allowed callers.
mk_res opa 'apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: mw
spec:
  type: middleware.http.opa
  version: v1
  metadata:
  - name: readBody
    value: "true"
  - name: includedHeaders
    value: "dapr-caller-app-id"
  - name: rego
    value: |
      package http

      default allow = false

      body := json.unmarshal(input.request.body)
      caller := input.request.headers["dapr-caller-app-id"]

      allow {
          body.method == "initialize"
      }

      allow {
          body.method == "tools/list"
      }

      allow {
          body.method == "tools/call"
          allowed_tools[caller][_] == body.params.name
      }

      allowed_tools := {
          "analyst-agent": ["get_inventory", "get_schema"],
          "bench-agent": ["get_inventory", "echo"],
      }' middleware.http.opa

declare -A URL=()
start_pair() { # NAME SERVER-FLAGS...
  local name=$1 home=$TMP/home-$1 bh bi bm ah ai am
  shift
  mkdir -p "$home"
  free_port bh; free_port bi; free_port bm; free_port ah; free_port ai; free_port am
  spawn "$TMP/$name-B.log" env OUTRIGGER_HOME="$home" "$OUTRIGGER_BIN" \
    sidecar --app-id mcp-server --app-port "$UP" --dapr-http-port "$bh" --dapr-internal-port "$bi" \
    --metrics-port "$bm" --log-level warn --enable-mtls=false "$@"
  wait_healthz "$bh" "$SPAWNED" "$name B" "$TMP/$name-B.log"
  spawn "$TMP/$name-A.log" env OUTRIGGER_HOME="$home" "$OUTRIGGER_BIN" \
    sidecar --app-id bench-agent --dapr-http-port "$ah" --dapr-internal-port "$ai" \
    --metrics-port "$am" --log-level warn --enable-mtls=false
  wait_healthz "$ah" "$SPAWNED" "$name A" "$TMP/$name-A.log"
  URL[$name]="http://127.0.0.1:$ah/v1.0/invoke/mcp-server/method/mcp"
}
PAIRS=(off bearer opa)
start_pair off
start_pair bearer --resources-path "$TMP/res-bearer" --config "$TMP/res-bearer/config.yaml"
start_pair opa --resources-path "$TMP/res-opa" --config "$TMP/res-opa/config.yaml"
CALL='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}'
for p in "${PAIRS[@]}"; do
  body=$(curl -s -X POST -H 'content-type: application/json' -H "authorization: Bearer $TOKEN" --data "$CALL" "${URL[$p]}")
  [[ $body == "$MCP_RESULT" ]] || die "pair $p answered: $body"
done
# The middleware really decides: no token → 401; a tool the policy does not list → 403.
[[ $(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' --data "$CALL" "${URL[bearer]}") == 401 ]] ||
  die "bearer let a request without a token through"
[[ $(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' --data "${CALL/echo/drop_table}" "${URL[opa]}") == 403 ]] ||
  die "opa let a forbidden tool through"

RAW=$TMP/raw.tsv
: >"$RAW"
run() { # ROUND PAIR
  local out rps p50 errs
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION"s --timeout 2s --latency -H "Authorization: Bearer $TOKEN" \
    -s "$BENCH_DIR/tools_call.lua" "${URL[$2]}" 2>&1) || { echo "$out" >&2; die "wrk failed"; }
  out=$(grep '^WRKSTAT' <<<"$out")
  rps=$(sed -n 's/.* rps=\([^ ]*\).*/\1/p' <<<"$out")
  p50=$(sed -n 's/.* p50_us=\([^ ]*\).*/\1/p' <<<"$out")
  errs=$(sed -n 's/.* err_status=\([^ ]*\).*/\1/p' <<<"$out")
  [[ $errs == 0 ]] || die "pair $2: $errs non-2xx responses"
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$rps" "$p50" >>"$RAW"
  log "round $1 $2: $rps req/s, p50 $p50 us"
}
for p in "${PAIRS[@]}"; do run 0 "$p"; done # warm-up (not counted)
: >"$RAW"
for r in $(seq "$ROUNDS"); do
  # Rotate the order so that no pair always runs first or last.
  for i in 0 1 2; do run "$r" "${PAIRS[$(((i + r) % 3))]}"; done
done
median() { sort -g | awk '{a[NR]=$1} END { if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
med() { awk -F'\t' -v p="$1" -v c="$2" '$2==p {print $c}' "$RAW" | median; }
OFF=$(med off 3) BEARER=$(med bearer 3) OPA=$(med opa 3)
ratio() { awk -v a="$1" -v b="$OFF" 'BEGIN { printf "%.3f", a / b }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t) ? "**PASS**" : "**FAIL**" }'; }
RB=$(ratio "$BEARER") RO=$(ratio "$OPA")
mkdir -p "$(dirname "$RESULTS")"
{
  echo "# Middleware cost ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $ROUNDS rounds x ${DURATION}s, wrk -t$THREADS -c$CONNS)"
  echo
  echo "| server appHttpPipeline | median req/s | median p50 (us) | ratio to none | target |"
  echo "|---|---|---|---|---|"
  echo "| none | $OFF | $(med off 4) | 1 | |"
  echo "| bearer (RS256, cached per worker) | $BEARER | $(med bearer 4) | $RB | >= 0.9 $(verdict "$RB" 0.9) |"
  echo "| opa (Dapr's MCP policy, readBody) | $OPA | $(med opa 4) | $RO | >= 0.85 $(verdict "$RO" 0.85) |"
} | tee "$RESULTS"
