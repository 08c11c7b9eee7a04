#!/usr/bin/env bash
# bench/run.sh — Outrigger's benchmark: proxy overhead of an MCP tools/call POST and per-stream
# memory of idle SSE streams, measured against a direct baseline and an nginx pair, interleaved in
# one run. Prints a markdown table and writes it to bench/results/latest.md. See bench/README.md.
#
#   bench/run.sh                       # ~3-4 minutes on 2 cores
#   ROUNDS=5 DURATION=10 bench/run.sh  # longer, steadier
#
# Everything listens on 127.0.0.1 only; every process it starts is stopped on exit.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

OUTRIGGER_BIN=${OUTRIGGER_BIN:-$REPO/build/outrigger}
ROUNDS=${ROUNDS:-3}                 # interleaved rounds; medians are over these
DURATION=${DURATION:-5}             # seconds per measurement
WARMUP=${WARMUP:-2}                 # seconds of warm-up per path (at CONNS), before round 1
CONNS=${CONNS:-32}                  # throughput: connections
THREADS=${THREADS:-2}               # throughput: wrk threads
PROXY_WORKERS=${PROXY_WORKERS:-auto}    # worker_processes of each nginx in the nginx pair
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1} # worker_processes of the upstream nginx
PINNED=${PINNED:-1}                 # 1: also measure 1-connection latency with every process on one CPU
PIN_CPU=${PIN_CPU:-0}               # the CPU used for that
SSE=${SSE:-1}                       # 0: skip the memory part
SSE_STREAMS=${SSE_STREAMS:-10000}   # N idle SSE streams
SSE_NGINX_REF=${SSE_NGINX_REF:-1}   # 0: skip the nginx-pair reference for per-stream memory
NOFILE=${NOFILE:-65536}             # wanted open-files limit
RESULTS=${RESULTS:-$BENCH_DIR/results/latest.md}
KEEP_TMP=${KEEP_TMP:-0}             # 1: keep the temp dir (configs, logs)
BENCH_STRICT=${BENCH_STRICT:-0}     # 1: exit 1 when a target fails or the outrigger path is missing

IDLE_RSS_TARGET_KB=8192             # 8 MiB
SSE_PER_STREAM_TARGET_KB=16         # 16 KiB

MCP_BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}'
MCP_RESULT='{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}'
INVOKE_PREFIX=/v1.0/invoke/mcp-server/method

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in wrk nginx node curl ss awk taskset; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $DURATION =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[0-9]+$ ]] ||
  die "ROUNDS, DURATION, WARMUP must be positive integers (seconds)"

# ---------------------------------------------------------------------------------------------
# processes, temp dir, cleanup
TMP=$(mktemp -d /tmp/outrigger-bench.XXXXXX)
PIDS=()
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
  if [[ $KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# spawn LOGFILE CMD... — start in the background, remember the pid in SPAWNED
spawn() {
  local logf=$1; shift
  "$@" >"$logf" 2>&1 &
  SPAWNED=$!
  PIDS+=("$SPAWNED")
}

# ---------------------------------------------------------------------------------------------
# ports (below the ephemeral range so outgoing connections never take them)
declare -A TAKEN_PORTS=()
free_port() { # free_port VAR
  local p _
  for _ in $(seq 500); do
    p=$((20000 + RANDOM % 12000))
    [[ -n ${TAKEN_PORTS[$p]:-} ]] && continue
    if [[ -z $(ss -Htan "( sport = :$p )" 2>/dev/null) ]]; then
      TAKEN_PORTS[$p]=1
      printf -v "$1" '%s' "$p"
      return 0
    fi
  done
  die "no free port found"
}
wait_port() { # wait_port PORT PID NAME LOG
  local i
  for i in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || { tail -n 20 "$4" >&2; die "$3 exited during start-up"; }
    sleep 0.1
  done
  tail -n 20 "$4" >&2
  die "$3 did not listen on 127.0.0.1:$1 within 10 s"
}
wait_healthz() { # wait_healthz PORT PID NAME LOG — returns 1 (with the reason in START_ERR) on failure
  local i code=""
  for i in $(seq 150); do
    code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$1/v1.0/healthz" || true)
    [[ $code == 204 ]] && return 0
    if ! kill -0 "$2" 2>/dev/null; then
      START_ERR="$3 exited during start-up"
      log "$START_ERR; its log:"; tail -n 20 "$4" >&2
      return 1
    fi
    sleep 0.1
  done
  START_ERR="$3: GET /v1.0/healthz did not answer 204 within 15 s (last: ${code:-none})"
  log "$START_ERR; its log:"; tail -n 20 "$4" >&2
  return 1
}
# pin_all CPULIST — set the CPU affinity of every process started (all threads) and their children
pin_all() {
  local pid c
  for pid in "${PIDS[@]}"; do
    taskset -a -p -c "$1" "$pid" >/dev/null 2>&1 || true
    for c in $(ps -o pid= --ppid "$pid"); do taskset -a -p -c "$1" "$c" >/dev/null 2>&1 || true; done
  done
}
ALL_CPUS=0-$(($(nproc) - 1))
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# RSS of a process plus its direct children (nginx master + workers)
rss_tree_kb() {
  local total pid
  total=$(rss_kb "$1")
  for pid in $(ps -o pid= --ppid "$1"); do total=$((total + $(rss_kb "$pid" 2>/dev/null || echo 0))); done
  echo "$total"
}

# ---------------------------------------------------------------------------------------------
# open-files limit: 10,000 streams through a pair is up to 2N descriptors in one proxy process
ulimit -n "$NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
SSE_N=$SSE_STREAMS
SSE_NOTE=""
if ((FD_LIMIT < 2 * SSE_STREAMS + 512)); then
  SSE_N=$(((FD_LIMIT - 512) / 2))
  SSE_NOTE="open-files limit is $FD_LIMIT (hard limit; wanted $NOFILE), below 2N+512 for N=$SSE_STREAMS; used N=$SSE_N"
  log "NOTE: $SSE_NOTE"
fi

# ---------------------------------------------------------------------------------------------
# nginx
NGINX_USER_LINE=""
[[ $EUID == 0 ]] && NGINX_USER_LINE="user root;"   # workers must reach the 0700 temp dir

# nginx_conf NAME WORKERS — writes the common part; the caller appends the server blocks and "}"
nginx_conf_head() {
  local dir=$TMP/nginx-$1
  mkdir -p "$dir/logs" "$dir/tmp"
  cat >"$dir/nginx.conf" <<EOF
$NGINX_USER_LINE
daemon off;
master_process on;
worker_processes $2;
worker_rlimit_nofile $FD_LIMIT;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections $((FD_LIMIT - 64)); }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
EOF
  echo "$dir/nginx.conf"
}
# proxy_block LISTEN_PORT NEXT_PORT FROM_LOCATION TO_PATH SSE(0|1)
nginx_proxy_server() {
  local extra=""
  [[ $5 == 1 ]] && extra="proxy_buffering off; proxy_read_timeout 3600s; proxy_send_timeout 3600s;"
  cat <<EOF
  upstream next { server 127.0.0.1:$2; keepalive 256; keepalive_requests 1000000; keepalive_timeout 75s; }
  server {
    listen 127.0.0.1:$1 reuseport backlog=4096;
    location $3 {
      proxy_pass http://next$4;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      $extra
    }
  }
}
EOF
}
start_nginx() { # start_nginx NAME CONF PORT — sets NGINX_PID
  local dir=$TMP/nginx-$1
  spawn "$dir/logs/stderr.log" nginx -p "$dir" -c "$2" -e "$dir/logs/error.log"
  NGINX_PID=$SPAWNED
  wait_port "$3" "$NGINX_PID" "nginx $1" "$dir/logs/error.log"
}

# ---------------------------------------------------------------------------------------------
# outrigger pair: B serves app-id mcp-server (app on APP_PORT), A is the caller side (bench-agent)
HAVE_OUTRIGGER=0
OUTRIGGER_SKIP_REASON=""
if [[ -x $OUTRIGGER_BIN ]]; then
  HAVE_OUTRIGGER=1
else
  OUTRIGGER_SKIP_REASON="$OUTRIGGER_BIN not found or not executable (build it first); outrigger rows skipped"
  log "SKIP: $OUTRIGGER_SKIP_REASON"
fi
start_pair() { # start_pair NAME APP_PORT — sets PAIR_A_PID PAIR_B_PID PAIR_A_PORT
  local name=$1 app=$2 home=$TMP/home-$1 bh bi bm ah ai am
  mkdir -p "$home"
  free_port bh; free_port bi; free_port bm; free_port ah; free_port ai; free_port am
  spawn "$TMP/$name-B.log" env OUTRIGGER_HOME="$home" "$OUTRIGGER_BIN" sidecar --app-id mcp-server \
    --app-port "$app" --dapr-http-port "$bh" --dapr-internal-port "$bi" --metrics-port "$bm" --log-level warn
  PAIR_B_PID=$SPAWNED
  spawn "$TMP/$name-A.log" env OUTRIGGER_HOME="$home" "$OUTRIGGER_BIN" sidecar --app-id bench-agent \
    --dapr-http-port "$ah" --dapr-internal-port "$ai" --metrics-port "$am" --log-level warn
  PAIR_A_PID=$SPAWNED
  PAIR_A_PORT=$ah
  if wait_healthz "$bh" "$PAIR_B_PID" "sidecar B ($name)" "$TMP/$name-B.log" &&
    wait_healthz "$ah" "$PAIR_A_PID" "sidecar A ($name)" "$TMP/$name-A.log"; then
    return 0
  fi
  stop_pid "$PAIR_A_PID"; stop_pid "$PAIR_B_PID"
  return 1
}
# `env` execs the binary, so $! is the sidecar's own pid (RSS is read from it).

# check_path NAME URL — one tools/call must answer 200 with a JSON-RPC result; retries for 5 s
check_path() {
  local i resp code body
  for i in $(seq 50); do
    resp=$(curl -sS -m 2 -X POST -H 'Content-Type: application/json' \
      -H 'Accept: application/json, text/event-stream' --data "$MCP_BODY" -w '\n%{http_code}' "$2" 2>&1 || true)
    code=${resp##*$'\n'}
    body=${resp%$'\n'*}
    [[ $code == 200 && $body == *'"result"'* ]] && return 0
    sleep 0.1
  done
  log "path $1 failed its check: HTTP $code, body: ${body:0:300}"
  return 1
}

# ---------------------------------------------------------------------------------------------
# wrk
RAW=$TMP/raw.tsv   # round mode path rps p50_us p99_us errors
: >"$RAW"
run_wrk() { # run_wrk THREADS CONNS SECONDS URL [CPULIST] — sets WRK_LINE
  local out
  out=$(timeout $(($3 + 20)) taskset -c "${5:-$ALL_CPUS}" wrk -t"$1" -c"$2" -d"$3"s --timeout 2s --latency \
    -s "$BENCH_DIR/tools_call.lua" "$4" 2>&1) || { echo "$out" >&2; die "wrk failed on $4"; }
  WRK_LINE=$(grep '^WRKSTAT' <<<"$out") || { echo "$out" >&2; die "no WRKSTAT line from wrk on $4"; }
}
wrk_field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$WRK_LINE"; }
measure() { # measure ROUND MODE PATH URL — MODE: latency | latency1cpu | throughput
  local t=1 c=1 cpus=$ALL_CPUS errs
  [[ $2 == throughput ]] && { t=$THREADS; c=$CONNS; }
  [[ $2 == latency1cpu ]] && cpus=$PIN_CPU
  run_wrk "$t" "$c" "$DURATION" "$4" "$cpus"
  errs=$(($(wrk_field err_connect) + $(wrk_field err_read) + $(wrk_field err_write) + $(wrk_field err_status) + $(wrk_field err_timeout)))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(wrk_field rps)" "$(wrk_field p50_us)" \
    "$(wrk_field p99_us)" "$errs" >>"$RAW"
  log "round $1 $2 $3: $(wrk_field rps) req/s, p50 $(wrk_field p50_us) us, p99 $(wrk_field p99_us) us, errors $errs"
}

# median of numbers on stdin ("-" when none)
median() { sort -g | awk '{a[NR]=$1} END { if (NR==0) print "-"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
raw_col() { awk -F'\t' -v m="$1" -v p="$2" -v c="$3" '$2==m && $3==p {print $c}' "$RAW"; }
med() { raw_col "$1" "$2" "$3" | median; }                       # med MODE PATH COL
# median over rounds of (PATH − direct) in the same round, column COL
med_added() {
  awk -F'\t' -v m="$1" -v p="$2" -v c="$3" '$2==m && $3=="direct" {d[$1]=$c} $2==m && $3==p {x[$1]=$c}
    END { for (r in x) if (r in d) print x[r]-d[r] }' "$RAW" | median
}
fmt() { awk -v x="$1" -v d="${2:-0}" 'BEGIN { if (x=="-"||x=="") print "-"; else printf "%.*f\n", d, x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a=="-"||b=="-"||b==0) print "-"; else printf "%.2f\n", a/b }'; }
pass() { [[ $1 == 1 ]] && echo "**PASS**" || echo "**FAIL**"; }

# ---------------------------------------------------------------------------------------------
START_TS=$(date -u +%Y-%m-%dT%H:%M:%SZ)
T0=$SECONDS
log "temp dir $TMP; rounds=$ROUNDS duration=${DURATION}s warmup=${WARMUP}s conns=$CONNS threads=$THREADS"

# Phase 1 — latency and throughput
free_port UP_PORT; free_port NG1_PORT; free_port NG2_PORT
conf=$(nginx_conf_head upstream "$UPSTREAM_WORKERS")
cat >>"$conf" <<EOF
  server {
    listen 127.0.0.1:$UP_PORT reuseport backlog=4096;
    default_type application/json;
    location / { return 200 '$MCP_RESULT'; }
  }
}
EOF
start_nginx upstream "$conf" "$UP_PORT"

conf=$(nginx_conf_head pair2 "$PROXY_WORKERS")
nginx_proxy_server "$NG2_PORT" "$UP_PORT" / "" 0 >>"$conf"
start_nginx pair2 "$conf" "$NG2_PORT"
conf=$(nginx_conf_head pair1 "$PROXY_WORKERS")
nginx_proxy_server "$NG1_PORT" "$NG2_PORT" "$INVOKE_PREFIX/" / 0 >>"$conf"
start_nginx pair1 "$conf" "$NG1_PORT"
NG1_PID=$NGINX_PID

declare -A URL=(
  [direct]="http://127.0.0.1:$UP_PORT/mcp"
  [nginx]="http://127.0.0.1:$NG1_PORT$INVOKE_PREFIX/mcp"
)
PATHS=(direct nginx)
if ((HAVE_OUTRIGGER)) && ! start_pair bench "$UP_PORT"; then
  HAVE_OUTRIGGER=0
  OUTRIGGER_SKIP_REASON="the sidecar pair did not start ($START_ERR); outrigger rows skipped"
  log "SKIP: $OUTRIGGER_SKIP_REASON"
fi
if ((HAVE_OUTRIGGER)); then
  BENCH_A_PID=$PAIR_A_PID BENCH_B_PID=$PAIR_B_PID
  URL[outrigger]="http://127.0.0.1:$PAIR_A_PORT$INVOKE_PREFIX/mcp"
  PATHS+=(outrigger)
  SIDECAR_THREADS="A $(awk '/^Threads:/ {print $2}' "/proc/$BENCH_A_PID/status"), B $(awk '/^Threads:/ {print $2}' "/proc/$BENCH_B_PID/status")"
fi

for p in "${PATHS[@]}"; do
  if ! check_path "$p" "${URL[$p]}"; then
    [[ $p == outrigger ]] || die "baseline path $p is broken"
    OUTRIGGER_SKIP_REASON="outrigger pair did not answer a tools/call with 200 + JSON-RPC result (see log above); outrigger rows skipped"
    PATHS=(direct nginx)
    HAVE_OUTRIGGER=0
  fi
done

for p in "${PATHS[@]}"; do
  log "warm-up $p (${WARMUP}s at $CONNS conns, 1s at 1 conn)"
  ((WARMUP > 0)) && run_wrk "$THREADS" "$CONNS" "$WARMUP" "${URL[$p]}"
  run_wrk 1 1 1 "${URL[$p]}"
done

NGINX_WORKERS_EACH=$(ps -o pid= --ppid "$NG1_PID" | wc -l)

for ((r = 1; r <= ROUNDS; r++)); do
  # baseline and candidate alternate which goes first, so neither always follows the other
  if ((r % 2)); then order=(direct nginx outrigger); else order=(direct outrigger nginx); fi
  modes=(latency throughput)
  [[ $PINNED == 1 ]] && modes=(latency latency1cpu throughput)
  for mode in "${modes[@]}"; do
    [[ $mode == latency1cpu ]] && pin_all "$PIN_CPU"
    [[ $mode == throughput ]] && pin_all "$ALL_CPUS"
    for p in "${order[@]}"; do
      [[ -n ${URL[$p]:-} && " ${PATHS[*]} " == *" $p "* ]] || continue
      measure "$r" "$mode" "$p" "${URL[$p]}"
    done
  done
done

RSS_AFTER_LOAD=""
if [[ " ${PATHS[*]} " == *" outrigger "* ]]; then
  RSS_AFTER_LOAD="A $(rss_kb "$BENCH_A_PID") KiB, B $(rss_kb "$BENCH_B_PID") KiB"
fi
# stop phase-1 processes so phase 2 runs on a quiet machine
for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
PIDS=()

# ---------------------------------------------------------------------------------------------
# Phase 2 — memory: idle RSS and RSS per idle SSE stream
MEM_ROWS=()          # markdown rows
IDLE_A="" IDLE_B="" SSE_A="" SSE_B="" SSE_OUTRIGGER_OK=0

# sse_open PROXY_PORT PATH N — opens N streams, leaves the client holding them; sets CLIENT_PID, OPEN_JSON
sse_open() {
  local i logf=$TMP/sse-client-$RANDOM.out
  : >"$logf"
  spawn "$logf" node "$BENCH_DIR/sse-hold.mjs" client --port "$1" --path "$2" -n "$3" \
    --concurrency 200 --timeout-s 10 --hold-s 300
  CLIENT_PID=$SPAWNED
  CLIENT_OUT=$logf
  OPEN_JSON=""
  for i in $(seq 1200); do   # up to 120 s
    OPEN_JSON=$(grep -m1 '"phase":"opened"' "$logf" || true)
    [[ -n $OPEN_JSON ]] && return 0
    kill -0 "$CLIENT_PID" 2>/dev/null || { cat "$logf" >&2; die "sse client exited early"; }
    sleep 0.1
  done
  die "sse client did not finish opening $3 streams within 120 s"
}
json_num() { sed -n "s/.*\"$2\":\([0-9-]*\).*/\1/p" <<<"$1"; }
sse_status() { # prints the client's status line after SIGUSR2
  local n
  n=$(grep -c '"phase":"status"' "$CLIENT_OUT" || true)
  kill -USR2 "$CLIENT_PID"
  for _ in $(seq 50); do
    (($(grep -c '"phase":"status"' "$CLIENT_OUT" || true) > n)) && break
    sleep 0.1
  done
  grep '"phase":"status"' "$CLIENT_OUT" | tail -n 1
}
app_open() { curl -s -m 2 "http://127.0.0.1:$APP_PORT/count" | sed -n 's/.*"open":\([0-9]*\).*/\1/p'; }
wait_app_open() { # wait until the app sees exactly N open streams (closes propagate asynchronously)
  for _ in $(seq 50); do [[ $(app_open) == "$1" ]] && return 0; sleep 0.1; done
  return 1
}
# measure_sse LABEL PROXY_PORT PATH PID_A PID_B RSSFN — warm-up, before, open N, after; sets SSE_RES_*
# Returns 1 (reason in SSE_RES_ERR) when the warm-up streams do not all open.
measure_sse() {
  local label=$1 port=$2 path=$3 pa=$4 pb=$5 rssfn=$6 before_a before_b after_a after_b st opened
  # warm-up: 100 streams opened and closed, so one-time allocations are not billed per stream;
  # it also checks the path before N streams are tried
  sse_open "$port" "$path" 100
  stop_pid "$CLIENT_PID"
  if [[ $(json_num "$OPEN_JSON" open) != 100 ]]; then
    SSE_RES_ERR="warm-up: $(json_num "$OPEN_JSON" open) of 100 streams opened, errors $(sed -n 's/.*"errors":\({[^}]*}\).*/\1/p' <<<"$OPEN_JSON")"
    log "$label: $SSE_RES_ERR"
    return 1
  fi
  wait_app_open 0 || log "$label: $(app_open) warm-up streams still open at the app 5 s after the client closed"
  sleep 1
  before_a=$($rssfn "$pa"); before_b=$($rssfn "$pb")
  sse_open "$port" "$path" "$SSE_N"
  opened=$(json_num "$OPEN_JSON" open)
  wait_app_open "$opened" || true
  sleep 2
  after_a=$($rssfn "$pa"); after_b=$($rssfn "$pb")
  st=$(sse_status)
  SSE_RES_APP=$(app_open)
  SSE_RES_OPEN=$(json_num "$st" open)
  SSE_RES_FAILED=$(json_num "$OPEN_JSON" failed)
  SSE_RES_MS=$(json_num "$OPEN_JSON" ms)
  SSE_RES_ERRORS=$(sed -n 's/.*"errors":\({[^}]*}\).*/\1/p' <<<"$OPEN_JSON")
  SSE_RES_A=$(awk -v a="$after_a" -v b="$before_a" -v n="$SSE_N" 'BEGIN { printf "%.2f", (a-b)/n }')
  SSE_RES_B=$(awk -v a="$after_b" -v b="$before_b" -v n="$SSE_N" 'BEGIN { printf "%.2f", (a-b)/n }')
  SSE_RES_DETAIL="A $before_a→$after_a KiB, B $before_b→$after_b KiB"
  stop_pid "$CLIENT_PID"
  # closing the client must close the streams all the way to the app
  wait_app_open 0 || true
  SSE_RES_LEFT=$(app_open)
  log "$label: opened $SSE_RES_OPEN/$SSE_N (failed $SSE_RES_FAILED $SSE_RES_ERRORS, app sees $SSE_RES_APP) in ${SSE_RES_MS} ms; per stream A $SSE_RES_A KiB, B $SSE_RES_B KiB ($SSE_RES_DETAIL); still open at app 5 s after the client closed: $SSE_RES_LEFT"
}

if [[ $SSE == 1 ]]; then
  free_port APP_PORT
  spawn "$TMP/sse-app.log" node "$BENCH_DIR/sse-hold.mjs" app --port "$APP_PORT"
  APP_PID=$SPAWNED
  wait_port "$APP_PORT" "$APP_PID" "sse app" "$TMP/sse-app.log"

  if ((HAVE_OUTRIGGER)) && ! start_pair mem "$APP_PORT"; then
    MEM_ROWS+=("| outrigger pair | did not start: $START_ERR | | | | | | | |")
  elif ((HAVE_OUTRIGGER)); then
    sleep 1
    IDLE_A=$(rss_kb "$PAIR_A_PID"); IDLE_B=$(rss_kb "$PAIR_B_PID")
    log "idle RSS: A $IDLE_A KiB, B $IDLE_B KiB"
    if measure_sse "outrigger pair" "$PAIR_A_PORT" "$INVOKE_PREFIX/sse" "$PAIR_A_PID" "$PAIR_B_PID" rss_kb; then
      SSE_A=$SSE_RES_A SSE_B=$SSE_RES_B
      [[ $SSE_RES_OPEN == "$SSE_N" && $SSE_RES_APP -ge $SSE_N ]] && SSE_OUTRIGGER_OK=1
      MEM_ROWS+=("| outrigger pair | $SSE_RES_OPEN / $SSE_N | $SSE_RES_APP | $SSE_RES_FAILED ${SSE_RES_ERRORS} | $SSE_RES_MS | $SSE_RES_A | $SSE_RES_B | $SSE_RES_LEFT | $SSE_RES_DETAIL |")
    else
      MEM_ROWS+=("| outrigger pair | failed — $SSE_RES_ERR | | | | | | | |")
    fi
    stop_pid "$PAIR_A_PID"; stop_pid "$PAIR_B_PID"
  else
    # self-test of the tool: N streams straight to the app
    sse_open "$APP_PORT" /sse "$SSE_N"
    wait_app_open "$(json_num "$OPEN_JSON" open)" || true
    st=$(sse_status)
    MEM_ROWS+=("| direct to app (tool self-test) | $(json_num "$st" open) / $SSE_N | $(app_open) | $(json_num "$OPEN_JSON" failed) | $(json_num "$OPEN_JSON" ms) | - | - | - | client RSS $(json_num "$st" rss_kb) KiB |")
    stop_pid "$CLIENT_PID"
  fi

  if [[ $SSE_NGINX_REF == 1 ]]; then
    free_port S1_PORT; free_port S2_PORT
    conf=$(nginx_conf_head sse2 "$PROXY_WORKERS")
    nginx_proxy_server "$S2_PORT" "$APP_PORT" / "" 1 >>"$conf"
    start_nginx sse2 "$conf" "$S2_PORT"; S2_PID=$NGINX_PID
    conf=$(nginx_conf_head sse1 "$PROXY_WORKERS")
    nginx_proxy_server "$S1_PORT" "$S2_PORT" "$INVOKE_PREFIX/" / 1 >>"$conf"
    start_nginx sse1 "$conf" "$S1_PORT"; S1_PID=$NGINX_PID
    if measure_sse "nginx pair" "$S1_PORT" "$INVOKE_PREFIX/sse" "$S1_PID" "$S2_PID" rss_tree_kb; then
      MEM_ROWS+=("| nginx pair (reference; master+workers) | $SSE_RES_OPEN / $SSE_N | $SSE_RES_APP | $SSE_RES_FAILED ${SSE_RES_ERRORS} | $SSE_RES_MS | $SSE_RES_A | $SSE_RES_B | $SSE_RES_LEFT | $SSE_RES_DETAIL |")
    else
      MEM_ROWS+=("| nginx pair (reference) | failed — $SSE_RES_ERR | | | | | | | |")
    fi
  fi
fi

# ---------------------------------------------------------------------------------------------
# report
ELAPSED=$((SECONDS - T0))
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
OUT_VERSION="-"
if [[ -x $OUTRIGGER_BIN ]]; then
  OUT_VERSION=$(timeout 2 "$OUTRIGGER_BIN" --version 2>/dev/null | head -n 1 || true)
  OUT_VERSION="${OUT_VERSION:-?} ($(stat -c %y "$OUTRIGGER_BIN" | cut -d. -f1))"
fi
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit")
HAS_O=0; [[ " ${PATHS[*]} " == *" outrigger "* ]] && HAS_O=1

path_name() {
  case $1 in direct) echo "direct (wrk → upstream)" ;; nginx) echo "nginx pair (baseline)" ;; outrigger) echo "outrigger pair" ;; esac
}
report() {
  local p name add50 trps errs line
  echo "# Outrigger benchmark results"
  echo
  echo "- run: $START_TS, ${ELAPSED}s; repo $GIT_REV; outrigger: ${OUT_VERSION}"
  echo "- machine: $(nproc) cores, ${CPU_MODEL:-?}, Linux $(uname -r); $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | cut -d' ' -f3), node $(node --version)"
  echo "- settings: ROUNDS=$ROUNDS DURATION=${DURATION}s WARMUP=${WARMUP}s; latency = 1 connection, 1 thread; throughput = $CONNS connections, $THREADS threads"
  echo "- nginx pair: worker_processes $PROXY_WORKERS ($NGINX_WORKERS_EACH workers each), upstream keepalive, HTTP/1.1, reuseport; upstream nginx: worker_processes $UPSTREAM_WORKERS${SIDECAR_THREADS:+; sidecar threads: $SIDECAR_THREADS}"
  [[ -n $OUTRIGGER_SKIP_REASON ]] && echo "- **outrigger skipped**: $OUTRIGGER_SKIP_REASON"
  echo
  echo "## Latency at 1 connection, 1 thread (medians of $ROUNDS interleaved rounds)"
  echo
  local pin_hdr="" pin_sep=""
  [[ $PINNED == 1 ]] && { pin_hdr=" p50 µs, 1 CPU | added p50 µs, 1 CPU | p99 µs, 1 CPU |"; pin_sep="---:|---:|---:|"; }
  echo "| path | p50 µs | added p50 µs | p99 µs | req/s |$pin_hdr"
  echo "|---|---:|---:|---:|---:|$pin_sep"
  for p in direct nginx outrigger; do
    name=$(path_name "$p")
    if [[ " ${PATHS[*]} " != *" $p "* ]]; then echo "| $name | skipped | | | |${pin_sep:+ | | |}"; continue; fi
    [[ $p == direct ]] && add50="—" || add50=$(fmt "$(med_added latency "$p" 5)")
    line="| $name | $(fmt "$(med latency "$p" 5)") | $add50 | $(fmt "$(med latency "$p" 6)") | $(fmt "$(med latency "$p" 4)") |"
    if [[ $PINNED == 1 ]]; then
      [[ $p == direct ]] && add50="—" || add50=$(fmt "$(med_added latency1cpu "$p" 5)")
      line+=" $(fmt "$(med latency1cpu "$p" 5)") | $add50 | $(fmt "$(med latency1cpu "$p" 6)") |"
    fi
    echo "$line"
  done
  echo
  echo "Added p50 = path p50 − direct p50 in the same round, median over rounds (p99s are shown per path only:"
  echo "their differences are dominated by scheduler noise). \"1 CPU\" = the same run with wrk and every"
  echo "server process (all threads) pinned to CPU $PIN_CPU: no cross-CPU wake-ups, so it is the CPU path length of"
  echo "a request and varies little between runs; the unpinned figures depend on where the scheduler puts each hop."
  echo
  echo "## Throughput at $CONNS connections, $THREADS wrk threads (medians of $ROUNDS rounds)"
  echo
  echo "| path | req/s | vs nginx pair | p50 µs | p99 µs |"
  echo "|---|---:|---:|---:|---:|"
  local nrps
  nrps=$(med throughput nginx 4)
  for p in direct nginx outrigger; do
    name=$(path_name "$p")
    if [[ " ${PATHS[*]} " != *" $p "* ]]; then echo "| $name | skipped | | | |"; continue; fi
    trps=$(med throughput "$p" 4)
    echo "| $name | $(fmt "$trps") | $(ratio "$trps" "$nrps") | $(fmt "$(med throughput "$p" 5)") | $(fmt "$(med throughput "$p" 6)") |"
  done
  echo
  errs=$(awk -F'\t' '{s+=$7} END {print s+0}' "$RAW")
  echo "wrk errors (connect/read/write/timeout, and non-2xx/3xx responses) over all measured runs: $errs."
  echo
  echo "## Targets"
  echo
  echo "| target | measured | result |"
  echo "|---|---|---|"
  if ((HAS_O)); then
    local na oa nr orr
    na=$(med_added latency nginx 5); oa=$(med_added latency outrigger 5)
    nr=$(med throughput nginx 4); orr=$(med throughput outrigger 4)
    echo "| outrigger added p50 ≤ nginx pair added p50 | $(fmt "$oa") µs vs $(fmt "$na") µs (ratio $(ratio "$oa" "$na")) | $(pass "$(awk -v a="$oa" -v b="$na" 'BEGIN{print (a<=b)?1:0}')") |"
    if [[ $PINNED == 1 ]]; then
      na=$(med_added latency1cpu nginx 5); oa=$(med_added latency1cpu outrigger 5)
      echo "| same, all pinned to 1 CPU | $(fmt "$oa") µs vs $(fmt "$na") µs (ratio $(ratio "$oa" "$na")) | $(pass "$(awk -v a="$oa" -v b="$na" 'BEGIN{print (a<=b)?1:0}')") |"
    fi
    echo "| outrigger req/s at $CONNS conns ≥ nginx pair | $(fmt "$orr") vs $(fmt "$nr") (ratio $(ratio "$orr" "$nr")) | $(pass "$(awk -v a="$orr" -v b="$nr" 'BEGIN{print (a>=b)?1:0}')") |"
  else
    echo "| outrigger added p50 ≤ nginx pair added p50 | nginx pair added p50 $(fmt "$(med_added latency nginx 5)") µs | not run |"
    [[ $PINNED == 1 ]] && echo "| same, all pinned to 1 CPU | nginx pair added p50 $(fmt "$(med_added latency1cpu nginx 5)") µs | not run |"
    echo "| outrigger req/s at $CONNS conns ≥ nginx pair | nginx pair $(fmt "$(med throughput nginx 4)") req/s | not run |"
  fi
  if [[ -n $IDLE_A ]]; then
    local worst=$((IDLE_A > IDLE_B ? IDLE_A : IDLE_B))
    echo "| idle RSS of one sidecar ≤ 8 MiB ($IDLE_RSS_TARGET_KB KiB) | A $IDLE_A KiB, B $IDLE_B KiB | $(pass $((worst <= IDLE_RSS_TARGET_KB))) |"
  else
    echo "| idle RSS of one sidecar ≤ 8 MiB ($IDLE_RSS_TARGET_KB KiB) | - | not run |"
  fi
  if [[ -n $SSE_A ]]; then
    local ok
    ok=$(awk -v a="$SSE_A" -v b="$SSE_B" -v t="$SSE_PER_STREAM_TARGET_KB" -v o="$SSE_OUTRIGGER_OK" 'BEGIN{print (o==1 && a<=t && b<=t)?1:0}')
    echo "| RSS per idle SSE stream ≤ $SSE_PER_STREAM_TARGET_KB KiB, each sidecar (N=$SSE_N, all open end-to-end) | A $SSE_A KiB, B $SSE_B KiB | $(pass "$ok") |"
  else
    echo "| RSS per idle SSE stream ≤ $SSE_PER_STREAM_TARGET_KB KiB, each sidecar | - | not run |"
  fi
  [[ -n $RSS_AFTER_LOAD ]] && { echo; echo "Sidecar RSS after the latency/throughput runs (information): $RSS_AFTER_LOAD."; }
  if ((${#MEM_ROWS[@]})); then
    echo
    echo "## Idle SSE streams (N=$SSE_N)"
    echo
    [[ -n $SSE_NOTE ]] && { echo "Note: $SSE_NOTE."; echo; }
    echo "| path | open at client (first event seen) | open at app | failed | open time ms | KiB/stream front (A / nginx #1) | KiB/stream back (B / nginx #2) | still open at app 5 s after client closed | RSS before → after |"
    echo "|---|---:|---:|---|---:|---:|---:|---:|---|"
    printf '%s\n' "${MEM_ROWS[@]}"
    echo
    echo "KiB/stream = (RSS with N streams open − RSS before) / N, after 100 streams were opened and closed as a"
    echo "warm-up. \"Open at app\" above N means warm-up streams were not closed upstream when the client went away."
  fi
  echo
  echo "## Per-round raw values"
  echo
  echo "| round | mode | path | req/s | p50 µs | p99 µs | errors |"
  echo "|---:|---|---|---:|---:|---:|---:|"
  awk -F'\t' '{printf "| %s | %s | %s | %.0f | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}' "$RAW"
}

mkdir -p "$(dirname "$RESULTS")"
report >"$TMP/latest.md"
cp "$TMP/latest.md" "$RESULTS"
cat "$RESULTS"
log "done in ${ELAPSED}s; written to $RESULTS"

if [[ $BENCH_STRICT == 1 ]]; then
  ((HAS_O)) || exit 1
  ! grep -q '\*\*FAIL\*\*' "$RESULTS" || exit 1
fi
exit 0
