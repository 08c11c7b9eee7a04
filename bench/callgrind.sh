#!/usr/bin/env bash
# bench/callgrind.sh — user-space instructions per proxied MCP tools/call in each sidecar of a pair,
# counted by callgrind (deterministic, unlike timings on a shared machine).
#
#   bench/callgrind.sh                 # plain hop (--enable-mtls=false), N1=1000, N2=2000
#   MTLS=1 bench/callgrind.sh          # default flags: mTLS between the sidecars
#
# Both sidecars run under valgrind --tool=callgrind with --workers 1; a node upstream answers a
# fixed JSON-RPC result. After a warm-up, the counters are zeroed, N1 requests sent one after
# another over one keep-alive connection (bench/cg-client.mjs, the bytes wrk sends), and dumped;
# the same with N2. Instructions per request = (Ir(N2) - Ir(N1)) / (N2 - N1), which cancels what
# does not scale with requests (timers, start-up). Dumps stay in OUT_DIR for callgrind_annotate.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
OUTRIGGER_BIN=${OUTRIGGER_BIN:-$REPO/build/outrigger}
N1=${N1:-1000}
N2=${N2:-2000}
WARM=${WARM:-200}
MTLS=${MTLS:-0}
OUT_DIR=${OUT_DIR:-$BENCH_DIR/results/callgrind}
MCP_RESULT='{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}'

log() { printf '[callgrind %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for tool in valgrind callgrind_control node curl ss; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[[ -x $OUTRIGGER_BIN ]] || die "$OUTRIGGER_BIN not found (scripts/build.sh release)"

TMP=$(mktemp -d /tmp/outrigger-cg.XXXXXX)
PIDS=()
cleanup() {
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [[ -f $TMP/home/sentry/sentry.lock ]]; then
    pid=$(head -c 32 "$TMP/home/sentry/sentry.lock" | tr -dc 0-9)
    [[ -n $pid && $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *sentry* ]] &&
      kill -TERM "$pid" 2>/dev/null || true
  fi
  if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

free_port() { # free_port VAR
  local p
  for _ in $(seq 500); do
    p=$((20000 + RANDOM % 12000))
    if [[ -z $(ss -Htan "( sport = :$p )" 2>/dev/null) ]]; then printf -v "$1" '%s' "$p"; return 0; fi
  done
  die "no free port"
}
wait_healthz() { # wait_healthz PORT PID
  for _ in $(seq 600); do
    [[ $(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/v1.0/healthz" || true) == 204 ]] &&
      return 0
    kill -0 "$2" 2>/dev/null || die "a sidecar exited during start-up (logs in $TMP)"
    sleep 0.2
  done
  die "sidecar on $1 did not become healthy"
}

mkdir -p "$OUT_DIR" "$TMP/home"
free_port UP; free_port BH; free_port BI; free_port BM; free_port AH; free_port AI; free_port AM
flags=(--workers 1 --log-level warn)
[[ $MTLS == 1 ]] || flags+=(--enable-mtls=false)
tag=$([[ $MTLS == 1 ]] && echo mtls || echo plain)

node -e '
const http = require("node:http");
const body = process.argv[2];
const s = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, {"content-type": "application/json", "content-length": body.length});
    res.end(body);
  });
});
s.keepAliveTimeout = 600000;
s.listen(Number(process.argv[1]), "127.0.0.1");' "$UP" "$MCP_RESULT" >"$TMP/up.log" 2>&1 &
PIDS+=($!)

vg() { # vg NAME ARGS... — a sidecar under callgrind, counting from the start
  local name=$1; shift
  env OUTRIGGER_HOME="$TMP/home" valgrind --tool=callgrind --callgrind-out-file="$OUT_DIR/$tag-$name.%p.out" \
    "$OUTRIGGER_BIN" sidecar "$@" "${flags[@]}" >"$TMP/$name.log" 2>&1 &
  SPAWNED=$!
  PIDS+=("$SPAWNED")
}
rm -f "$OUT_DIR/$tag"-*.out*
if [[ $MTLS == 1 ]]; then
  # The sentry runs natively (a sidecar would start it inside valgrind, too slowly for its wait).
  env OUTRIGGER_HOME="$TMP/home" "$OUTRIGGER_BIN" sentry >"$TMP/sentry.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do [[ -S $TMP/home/sentry/sentry.sock ]] && break; sleep 0.1; done
  [[ -S $TMP/home/sentry/sentry.sock ]] || die "the sentry did not start (see $TMP/sentry.log)"
fi
vg B --app-id mcp-server --app-port "$UP" --dapr-http-port "$BH" --dapr-internal-port "$BI" --metrics-port "$BM"
B=$SPAWNED
wait_healthz "$BH" "$B"
vg A --app-id bench-agent --dapr-http-port "$AH" --dapr-internal-port "$AI" --metrics-port "$AM"
A=$SPAWNED
wait_healthz "$AH" "$A"

client() { node "$BENCH_DIR/cg-client.mjs" "$AH" /v1.0/invoke/mcp-server/method/mcp "$1"; }
total_ir() { # total_ir FILE — the Ir total of one dump
  awk '/^(summary|totals):/ {print $2; exit}' "$1"
}
client "$WARM" || die "warm-up failed (logs: $TMP)"
declare -A IR
for n in "$N1" "$N2"; do
  callgrind_control -z "$A" >/dev/null
  callgrind_control -z "$B" >/dev/null
  client "$n" || die "run of $n failed"
  for side in A B; do
    pid=${!side}
    callgrind_control -d "n$n" "$pid" >/dev/null
    f=$(ls -t "$OUT_DIR/$tag-$side.$pid.out".* | head -n 1)
    mv "$f" "$OUT_DIR/$tag-$side-n$n.out"
    IR[$side,$n]=$(total_ir "$OUT_DIR/$tag-$side-n$n.out")
  done
done
for side in A B; do
  per=$(( (IR[$side,$N2] - IR[$side,$N1]) / (N2 - N1) ))
  label=$([[ $side == A ]] && echo "caller (A)" || echo "callee (B)")
  printf '%s %-11s Ir(N=%d)=%d Ir(N=%d)=%d  instructions/request=%d\n' "$tag" "$label" \
    "$N1" "${IR[$side,$N1]}" "$N2" "${IR[$side,$N2]}" "$per"
done
log "dumps: $OUT_DIR/$tag-{A,B}-n{$N1,$N2}.out (callgrind_annotate)"
