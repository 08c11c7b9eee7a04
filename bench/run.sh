#!/usr/bin/env bash
# bench/run.sh — Outrigger's benchmark: proxy overhead of an MCP tools/call POST and per-stream
# memory of idle SSE streams, measured against a direct baseline and nginx pairs, interleaved in
# one run. Two comparisons: a plain hop between the proxies (sidecars with --enable-mtls=false vs
# nginx → nginx over HTTP) and an mTLS hop (sidecars with their default mTLS vs nginx → nginx over
# TLS 1.3 with client certificates). Prints markdown tables and writes them to
# bench/results/latest.md. See bench/README.md.
#
#   bench/run.sh                       # ~4 minutes on 2 cores
#   ROUNDS=5 DURATION=10 bench/run.sh  # longer, steadier (~14 minutes)
#
# Everything listens on 127.0.0.1 only; every process it starts is stopped on exit.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

OUTRIGGER_BIN=${OUTRIGGER_BIN:-$REPO/build/outrigger}
ROUNDS=${ROUNDS:-3}                 # interleaved rounds; medians are over these
DURATION=${DURATION:-4}             # seconds per measurement
WARMUP=${WARMUP:-2}                 # seconds of warm-up per path (at CONNS), before round 1
CONNS=${CONNS:-32}                  # throughput: connections
THREADS=${THREADS:-2}               # throughput: wrk threads
PROXY_WORKERS=${PROXY_WORKERS:-auto}    # worker_processes of each nginx in the nginx pair
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1} # worker_processes of the upstream nginx
PINNED=${PINNED:-1}                 # 1: also measure 1-connection latency with every process on one CPU
PIN_CPU=${PIN_CPU:-0}               # the CPU used for that
MTLS=${MTLS:-1}                     # 0: skip the mTLS comparison (outrigger mTLS pair vs nginx mTLS pair)
SSE=${SSE:-1}                       # 0: skip the memory part
SSE_STREAMS=${SSE_STREAMS:-10000}   # N idle SSE streams
SSE_NGINX_REF=${SSE_NGINX_REF:-1}   # 0: skip the nginx-pair reference for per-stream memory
SSE_MTLS=${SSE_MTLS:-1}             # 0: skip the per-stream memory of the mTLS sidecar pair
NOFILE=${NOFILE:-65536}             # wanted open-files limit
RESULTS=${RESULTS:-$BENCH_DIR/results/latest.md}
KEEP_TMP=${KEEP_TMP:-0}             # 1: keep the temp dir (configs, logs)
BENCH_STRICT=${BENCH_STRICT:-0}     # 1: exit 1 when a target fails or the outrigger path is missing

IDLE_RSS_TARGET_KB=8192             # 8 MiB
SSE_PER_STREAM_TARGET_KB=16         # 16 KiB

MCP_BODY='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}'
MCP_RESULT='{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}'
INVOKE_PREFIX=/v1.0/invoke/mcp-server/method
NG2_TLS_NAME=nginx-2.bench.internal  # DNS SAN of nginx #2's server certificate (proxy_ssl_name)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in wrk nginx node curl ss awk taskset; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[[ $MTLS != 1 ]] || command -v openssl >/dev/null || die "missing tool: openssl (or MTLS=0 to skip the mTLS comparison)"
[[ $MTLS != 1 ]] || nginx -V 2>&1 | grep -q -- --with-http_ssl_module ||
  die "this nginx has no http_ssl_module (or MTLS=0 to skip the mTLS comparison)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $DURATION =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[0-9]+$ ]] ||
  die "ROUNDS, DURATION, WARMUP must be positive integers (seconds)"

# ---------------------------------------------------------------------------------------------
# processes, temp dir, cleanup
TMP=$(mktemp -d /tmp/outrigger-bench.XXXXXX)
PIDS=()
SENTRY_HOMES=()   # OUTRIGGER_HOMEs of sidecars with mTLS on: each may have started a sentry
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
# stop_sentry HOME — a sidecar with mTLS on starts a detached sentry (setsid, double fork) under
# HOME/sentry when none answers; it is no child of ours, so it is found through the pid that it
# writes to HOME/sentry/sentry.lock, and only stopped if that pid is an outrigger sentry of HOME.
stop_sentry() {
  local home=$1 lock=$1/sentry/sentry.lock pid i
  [[ -f $lock ]] || return 0
  pid=$(head -c 32 "$lock" | tr -dc 0-9)
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *sentry* ]] || return 0
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$(readlink -f "$OUTRIGGER_BIN")"* ]] ||
    tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OUTRIGGER_HOME=$home" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
  for i in "${SENTRY_HOMES[@]}"; do stop_sentry "$i"; done
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
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo "-"; }
# RSS of a process plus its direct children (nginx master + workers)
rss_tree_kb() {
  local total pid
  total=$(rss_kb "$1")
  for pid in $(ps -o pid= --ppid "$1"); do total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0))); done
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
# nginx_proxy_server LISTEN_PORT NEXT_PORT FROM_LOCATION TO_PATH SSE(0|1) [TLS: out|in]
#   out: this nginx is #1 of an mTLS pair (HTTPS to the next hop, with a client certificate);
#   in:  this nginx is #2 of an mTLS pair (serves TLS 1.3 and requires a client certificate).
nginx_proxy_server() {
  local extra="" scheme=http listen_tls="" server_tls="" pki=$TMP/pki
  [[ $5 == 1 ]] && extra="proxy_buffering off; proxy_read_timeout 3600s; proxy_send_timeout 3600s;"
  case ${6:-} in
    out)
      scheme=https
      extra+="
      proxy_ssl_certificate $pki/nginx-1.pem;
      proxy_ssl_certificate_key $pki/nginx-1.key;
      proxy_ssl_trusted_certificate $pki/ca.pem;
      proxy_ssl_verify on;
      proxy_ssl_verify_depth 2;
      proxy_ssl_name $NG2_TLS_NAME;
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_session_reuse on;"
      ;;
    in)
      listen_tls=" ssl"
      server_tls="ssl_certificate $pki/nginx-2.pem;
    ssl_certificate_key $pki/nginx-2.key;
    ssl_client_certificate $pki/ca.pem;
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:bench_tls:10m;
    ssl_session_timeout 1h;
    ssl_session_tickets on;"
      ;;
  esac
  cat <<EOF
  upstream next { server 127.0.0.1:$2; keepalive 256; keepalive_requests 1000000; keepalive_timeout 75s; }
  server {
    listen 127.0.0.1:$1$listen_tls reuseport backlog=4096;
    $server_tls
    location $3 {
      proxy_pass $scheme://next$4;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      $extra
    }
  }
}
EOF
}
# make_pki — a throwaway CA and two EC P-256 leaf certificates (nginx-1: the client side of the
# hop, nginx-2: the server side; both carry serverAuth + clientAuth like a SPIFFE SVID), in $TMP/pki
make_pki() {
  local d=$TMP/pki n
  mkdir -p "$d"
  (
    cd "$d"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
    openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=outrigger-bench throwaway CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
    for n in nginx-1 nginx-2; do
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$n.key"
      openssl req -new -key "$n.key" -subj "/CN=$n.bench.internal" -out "$n.csr"
      printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=DNS:$n.bench.internal" >"$n.ext"
      openssl x509 -req -in "$n.csr" -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
        -days 2 -sha256 -extfile "$n.ext" -out "$n.pem"
    done
    openssl verify -CAfile ca.pem nginx-1.pem nginx-2.pem
  ) >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log" >&2; die "could not make the throwaway CA and certificates"; }
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
OUT_VERSION="-"
if [[ -x $OUTRIGGER_BIN ]]; then
  HAVE_OUTRIGGER=1
  # run a private copy: a rebuild of the binary during the run must not mix two builds
  OUT_VERSION=$(timeout 2 "$OUTRIGGER_BIN" --version 2>/dev/null | head -n 1 || true)
  OUT_VERSION="${OUT_VERSION:-?} ($OUTRIGGER_BIN, built $(stat -c %y "$OUTRIGGER_BIN" | cut -d. -f1))"
  mkdir -p "$TMP/bin"
  cp "$OUTRIGGER_BIN" "$TMP/bin/outrigger"
  OUTRIGGER_BIN=$TMP/bin/outrigger
else
  OUTRIGGER_SKIP_REASON="$OUTRIGGER_BIN not found or not executable (build it first); outrigger rows skipped"
  log "SKIP: $OUTRIGGER_SKIP_REASON"
fi
# start_pair NAME APP_PORT MTLS(0|1) — sets PAIR_A_PID PAIR_B_PID PAIR_A_PORT PAIR_HOME.
# MTLS=0 passes --enable-mtls=false to both sidecars (plain HTTP between them, no sentry); MTLS=1
# starts them with the default flags (mTLS on), so the first one starts a sentry under the home.
start_pair() {
  local name=$1 app=$2 home=$TMP/home-$1 bh bi bm ah ai am flags=()
  mkdir -p "$home"
  PAIR_HOME=$home
  if [[ $3 == 0 ]]; then flags=(--enable-mtls=false); else SENTRY_HOMES+=("$home"); fi
  free_port bh; free_port bi; free_port bm; free_port ah; free_port ai; free_port am
  spawn "$TMP/$name-B.log" env OUTRIGGER_HOME="$home" "$OUTRIGGER_BIN" sidecar --app-id mcp-server \
    --app-port "$app" --dapr-http-port "$bh" --dapr-internal-port "$bi" --metrics-port "$bm" \
    --log-level warn "${flags[@]}"
  PAIR_B_PID=$SPAWNED PAIR_A_PID=""
  PAIR_A_PORT=$ah
  # B first, A once B answers: two sidecars opening a fresh registry at the same instant can fail
  # with "set journal mode: database is locked" (seen with mTLS on), which is not what is measured
  if wait_healthz "$bh" "$PAIR_B_PID" "sidecar B ($name)" "$TMP/$name-B.log"; then
    spawn "$TMP/$name-A.log" env OUTRIGGER_HOME="$home" "$OUTRIGGER_BIN" sidecar --app-id bench-agent \
      --dapr-http-port "$ah" --dapr-internal-port "$ai" --metrics-port "$am" --log-level warn "${flags[@]}"
    PAIR_A_PID=$SPAWNED
    if wait_healthz "$ah" "$PAIR_A_PID" "sidecar A ($name)" "$TMP/$name-A.log" &&
      check_mtls_mode "$name" "$3"; then
      return 0
    fi
  fi
  [[ -z $PAIR_A_PID ]] || stop_pid "$PAIR_A_PID"
  stop_pid "$PAIR_B_PID"; stop_sentry "$home"
  return 1
}
# `env` execs the binary, so $! is the sidecar's own pid (RSS is read from it).
stop_pair() { # stop_pair PID_A PID_B HOME — the sidecars, then the sentry one of them may have started
  stop_pid "$1"; stop_pid "$2"; stop_sentry "$3"
}
# check_mtls_mode NAME MTLS — the sidecars run in the mode asked for: with mTLS off both log their
# "mTLS IS OFF" warning and no sentry runs; with mTLS on neither logs it and a sentry runs
check_mtls_mode() {
  local off
  off=$(cat "$TMP/$1-A.log" "$TMP/$1-B.log" | grep -c 'mTLS IS OFF' || true)
  if [[ $2 == 0 && $off -lt 2 ]]; then
    START_ERR="$1: started with --enable-mtls=false but the sidecars did not both log that mTLS is off"
  elif [[ $2 == 1 && $off -gt 0 ]]; then
    START_ERR="$1: a sidecar started with default flags says mTLS is off"
  elif [[ $2 == 1 && ! -s $TMP/home-$1/sentry/sentry.lock ]]; then
    START_ERR="$1: mTLS on but no sentry.lock under its OUTRIGGER_HOME"
  else
    return 0
  fi
  log "$START_ERR"
  return 1
}
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
PATHS=()
drop_path() { local p k=(); for p in "${PATHS[@]}"; do [[ $p == "$1" ]] || k+=("$p"); done; PATHS=("${k[@]}"); }
has_path() { [[ " ${PATHS[*]} " == *" $1 "* ]]; }
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
  check_alive "$3" "round $1 $2"
}
# check_alive PATH WHEN — every server process of PATH must still run; if one has exited, the path
# is dropped (its rows say why: exit status or signal) instead of being measured as a broken proxy
declare -A PATH_PIDS=() DEAD_REASON=()
check_alive() {
  local pid st what
  for pid in ${PATH_PIDS[$1]:-}; do
    kill -0 "$pid" 2>/dev/null && continue
    st=0; wait "$pid" 2>/dev/null || st=$?
    if ((st > 128 && st < 128 + 65)); then what="was killed by SIG$(kill -l $((st - 128)))"
    else what="exited with status $st"; fi
    DEAD_REASON[$1]="$(tr '\n' ' ' <<<"${PID_NAME[$pid]:-pid $pid}")(pid $pid) $what by the end of $2; the path is dropped from the medians"
    log "ERROR: $1: ${DEAD_REASON[$1]}"
    drop_path "$1"
    return 0
  done
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
# median over rounds of PATH / BASE in the same round, column COL (paired: immune to load that
# changes between rounds)
med_ratio() {
  awk -F'\t' -v m="$1" -v p="$2" -v b="$3" -v c="$4" '$2==m && $3==b {d[$1]=$c} $2==m && $3==p {x[$1]=$c}
    END { for (r in x) if (r in d && d[r] > 0) print x[r]/d[r] }' "$RAW" | median
}
fmt() { awk -v x="$1" -v d="${2:-0}" 'BEGIN { if (x=="-"||x=="") print "-"; else printf "%.*f\n", d, x }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a=="-"||b=="-"||b==0) print "-"; else printf "%.2f\n", a/b }'; }
pass() { [[ $1 == 1 ]] && echo "**PASS**" || echo "**FAIL**"; }

# ---------------------------------------------------------------------------------------------
START_TS=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)   # other work on the machine skews every figure
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit")
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
UPSTREAM_PID=$NGINX_PID

conf=$(nginx_conf_head pair2 "$PROXY_WORKERS")
nginx_proxy_server "$NG2_PORT" "$UP_PORT" / "" 0 >>"$conf"
start_nginx pair2 "$conf" "$NG2_PORT"
NG2_PID=$NGINX_PID
conf=$(nginx_conf_head pair1 "$PROXY_WORKERS")
nginx_proxy_server "$NG1_PORT" "$NG2_PORT" "$INVOKE_PREFIX/" / 0 >>"$conf"
start_nginx pair1 "$conf" "$NG1_PORT"
NG1_PID=$NGINX_PID

declare -A URL=(
  [direct]="http://127.0.0.1:$UP_PORT/mcp"
  [nginx]="http://127.0.0.1:$NG1_PORT$INVOKE_PREFIX/mcp"
)
PATHS=(direct nginx)
declare -A PID_NAME=()
PATH_PIDS[direct]=$UPSTREAM_PID PATH_PIDS[nginx]="$UPSTREAM_PID $NG1_PID $NG2_PID"

# nginx mTLS pair: nginx #1 → (TLS 1.3, client certificate both ways) → nginx #2 → upstream
if [[ $MTLS == 1 ]]; then
  make_pki
  free_port NT1_PORT; free_port NT2_PORT
  conf=$(nginx_conf_head tls2 "$PROXY_WORKERS")
  nginx_proxy_server "$NT2_PORT" "$UP_PORT" / "" 0 in >>"$conf"
  start_nginx tls2 "$conf" "$NT2_PORT"
  NT2_PID=$NGINX_PID
  conf=$(nginx_conf_head tls1 "$PROXY_WORKERS")
  nginx_proxy_server "$NT1_PORT" "$NT2_PORT" "$INVOKE_PREFIX/" / 0 out >>"$conf"
  start_nginx tls1 "$conf" "$NT1_PORT"
  PATH_PIDS[nginx-mtls]="$UPSTREAM_PID $NGINX_PID $NT2_PID"
  # nginx #2 must refuse a client without a certificate and serve one with it, over TLS 1.3
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' --cacert "$TMP/pki/ca.pem" \
    --resolve "$NG2_TLS_NAME:$NT2_PORT:127.0.0.1" "https://$NG2_TLS_NAME:$NT2_PORT/mcp" || true)
  [[ $code == 400 ]] || die "nginx #2 of the mTLS pair answered $code (not 400) to a client without a certificate"
  code=$(curl -s -o /dev/null -m 2 -w '%{http_code} %{ssl_verify_result}' --tlsv1.3 --cacert "$TMP/pki/ca.pem" \
    --cert "$TMP/pki/nginx-1.pem" --key "$TMP/pki/nginx-1.key" \
    --resolve "$NG2_TLS_NAME:$NT2_PORT:127.0.0.1" "https://$NG2_TLS_NAME:$NT2_PORT/mcp" || true)
  [[ $code == "200 0" ]] || die "nginx #2 of the mTLS pair: a TLS 1.3 client with a certificate got '$code', not '200 0'"
  NG2_TLS_INFO=$(openssl s_client -connect "127.0.0.1:$NT2_PORT" -servername "$NG2_TLS_NAME" -CAfile "$TMP/pki/ca.pem" \
    -cert "$TMP/pki/nginx-1.pem" -key "$TMP/pki/nginx-1.key" -brief </dev/null 2>&1 |
    awk -F': ' '/^Protocol version/ {v=$2} /^Ciphersuite/ {c=$2} END {print v", "c}' || true)
  URL[nginx-mtls]="http://127.0.0.1:$NT1_PORT$INVOKE_PREFIX/mcp"
  PATHS+=(nginx-mtls)
fi

OUTRIGGER_MTLS_SKIP_REASON=""
if ((HAVE_OUTRIGGER)) && ! start_pair bench "$UP_PORT" 0; then
  HAVE_OUTRIGGER=0
  OUTRIGGER_SKIP_REASON="the sidecar pair (--enable-mtls=false) did not start ($START_ERR); outrigger rows skipped"
  log "SKIP: $OUTRIGGER_SKIP_REASON"
fi
if ((HAVE_OUTRIGGER)); then
  BENCH_A_PID=$PAIR_A_PID BENCH_B_PID=$PAIR_B_PID
  PATH_PIDS[outrigger]="$PAIR_A_PID $PAIR_B_PID"
  PID_NAME[$PAIR_A_PID]="sidecar A (mTLS off)" PID_NAME[$PAIR_B_PID]="sidecar B (mTLS off)"
  URL[outrigger]="http://127.0.0.1:$PAIR_A_PORT$INVOKE_PREFIX/mcp"
  PATHS+=(outrigger)
  SIDECAR_THREADS="A $(awk '/^Threads:/ {print $2}' "/proc/$BENCH_A_PID/status"), B $(awk '/^Threads:/ {print $2}' "/proc/$BENCH_B_PID/status")"
fi
if [[ $MTLS == 1 ]]; then
  if [[ -n $OUTRIGGER_SKIP_REASON && ! -x $OUTRIGGER_BIN ]]; then
    OUTRIGGER_MTLS_SKIP_REASON=$OUTRIGGER_SKIP_REASON
  elif ! start_pair bench-mtls "$UP_PORT" 1; then
    OUTRIGGER_MTLS_SKIP_REASON="the sidecar pair with mTLS did not start ($START_ERR); outrigger mTLS rows skipped"
    log "SKIP: $OUTRIGGER_MTLS_SKIP_REASON"
  else
    BENCH_TA_PID=$PAIR_A_PID BENCH_TB_PID=$PAIR_B_PID
    PATH_PIDS[outrigger-mtls]="$PAIR_A_PID $PAIR_B_PID"
    PID_NAME[$PAIR_A_PID]="sidecar A (mTLS on)" PID_NAME[$PAIR_B_PID]="sidecar B (mTLS on)"
    URL[outrigger-mtls]="http://127.0.0.1:$PAIR_A_PORT$INVOKE_PREFIX/mcp"
    PATHS+=(outrigger-mtls)
  fi
fi

for p in "${PATHS[@]}"; do
  if ! check_path "$p" "${URL[$p]}"; then
    case $p in
      outrigger) OUTRIGGER_SKIP_REASON="outrigger pair did not answer a tools/call with 200 + JSON-RPC result (see log above); outrigger rows skipped" ;;
      outrigger-mtls) OUTRIGGER_MTLS_SKIP_REASON="outrigger mTLS pair did not answer a tools/call with 200 + JSON-RPC result (see log above); its rows skipped" ;;
      *) die "baseline path $p is broken" ;;
    esac
    drop_path "$p"
  fi
done
has_path outrigger || HAVE_OUTRIGGER=0

for p in "${PATHS[@]}"; do
  log "warm-up $p (${WARMUP}s at $CONNS conns, 1s at 1 conn)"
  ((WARMUP > 0)) && run_wrk "$THREADS" "$CONNS" "$WARMUP" "${URL[$p]}"
  run_wrk 1 1 1 "${URL[$p]}"
done

NGINX_WORKERS_EACH=$(ps -o pid= --ppid "$NG1_PID" | wc -l)

for ((r = 1; r <= ROUNDS; r++)); do
  # direct first; then the proxied paths, in reverse order every other round, so no baseline or
  # candidate always follows the same path
  if ((r % 2)); then order=(direct nginx outrigger nginx-mtls outrigger-mtls)
  else order=(direct outrigger-mtls nginx-mtls outrigger nginx); fi
  modes=(latency throughput)
  [[ $PINNED == 1 ]] && modes=(latency latency1cpu throughput)
  for mode in "${modes[@]}"; do
    [[ $mode == latency1cpu ]] && pin_all "$PIN_CPU"
    [[ $mode == throughput ]] && pin_all "$ALL_CPUS"
    for p in "${order[@]}"; do
      has_path "$p" || continue
      measure "$r" "$mode" "$p" "${URL[$p]}"
    done
  done
done

RSS_AFTER_LOAD=""
has_path outrigger && RSS_AFTER_LOAD="plain pair A $(rss_kb "$BENCH_A_PID") KiB, B $(rss_kb "$BENCH_B_PID") KiB"
has_path outrigger-mtls && RSS_AFTER_LOAD+="${RSS_AFTER_LOAD:+; }mTLS pair A $(rss_kb "$BENCH_TA_PID") KiB, B $(rss_kb "$BENCH_TB_PID") KiB"
# stop phase-1 processes (and the mTLS pair's sentry) so phase 2 runs on a quiet machine
for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
PIDS=()
stop_sentry "$TMP/home-bench-mtls"

# ---------------------------------------------------------------------------------------------
# Phase 2 — memory: idle RSS and RSS per idle SSE stream
MEM_ROWS=()          # markdown rows
IDLE_A="" IDLE_B="" SSE_A="" SSE_B="" SSE_OUTRIGGER_OK=0
IDLE_TA="" IDLE_TB="" SSE_TA="" SSE_TB="" SSE_OUTRIGGER_MTLS_OK=0 MEM_MTLS_ERR=""

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

  if ((HAVE_OUTRIGGER)) && ! start_pair mem "$APP_PORT" 0; then
    MEM_ROWS+=("| outrigger pair (mTLS off) | did not start: $START_ERR | | | | | | | |")
  elif ((HAVE_OUTRIGGER)); then
    sleep 1
    IDLE_A=$(rss_kb "$PAIR_A_PID"); IDLE_B=$(rss_kb "$PAIR_B_PID")
    log "idle RSS, mTLS off: A $IDLE_A KiB, B $IDLE_B KiB"
    if measure_sse "outrigger pair, mTLS off" "$PAIR_A_PORT" "$INVOKE_PREFIX/sse" "$PAIR_A_PID" "$PAIR_B_PID" rss_kb; then
      SSE_A=$SSE_RES_A SSE_B=$SSE_RES_B
      [[ $SSE_RES_OPEN == "$SSE_N" && $SSE_RES_APP -ge $SSE_N ]] && SSE_OUTRIGGER_OK=1
      MEM_ROWS+=("| outrigger pair (mTLS off) | $SSE_RES_OPEN / $SSE_N | $SSE_RES_APP | $SSE_RES_FAILED ${SSE_RES_ERRORS} | $SSE_RES_MS | $SSE_RES_A | $SSE_RES_B | $SSE_RES_LEFT | $SSE_RES_DETAIL |")
    else
      MEM_ROWS+=("| outrigger pair (mTLS off) | failed — $SSE_RES_ERR | | | | | | | |")
    fi
    stop_pair "$PAIR_A_PID" "$PAIR_B_PID" "$PAIR_HOME"
  else
    # self-test of the tool: N streams straight to the app
    sse_open "$APP_PORT" /sse "$SSE_N"
    wait_app_open "$(json_num "$OPEN_JSON" open)" || true
    st=$(sse_status)
    MEM_ROWS+=("| direct to app (tool self-test) | $(json_num "$st" open) / $SSE_N | $(app_open) | $(json_num "$OPEN_JSON" failed) | $(json_num "$OPEN_JSON" ms) | - | - | - | client RSS $(json_num "$st" rss_kb) KiB |")
    stop_pid "$CLIENT_PID"
  fi

  # the same with mTLS on (the default): idle RSS, and per-stream RSS unless SSE_MTLS=0
  if [[ $MTLS == 1 && -x $OUTRIGGER_BIN ]]; then
    if ! start_pair mem-mtls "$APP_PORT" 1; then
      MEM_MTLS_ERR="did not start: $START_ERR"
      MEM_ROWS+=("| outrigger pair (mTLS on) | $MEM_MTLS_ERR | | | | | | | |")
    else
      sleep 1
      IDLE_TA=$(rss_kb "$PAIR_A_PID"); IDLE_TB=$(rss_kb "$PAIR_B_PID")
      log "idle RSS, mTLS on: A $IDLE_TA KiB, B $IDLE_TB KiB"
      if [[ $SSE_MTLS != 1 ]]; then
        :
      elif measure_sse "outrigger pair, mTLS on" "$PAIR_A_PORT" "$INVOKE_PREFIX/sse" "$PAIR_A_PID" "$PAIR_B_PID" rss_kb; then
        SSE_TA=$SSE_RES_A SSE_TB=$SSE_RES_B
        [[ $SSE_RES_OPEN == "$SSE_N" && $SSE_RES_APP -ge $SSE_N ]] && SSE_OUTRIGGER_MTLS_OK=1
        MEM_ROWS+=("| outrigger pair (mTLS on) | $SSE_RES_OPEN / $SSE_N | $SSE_RES_APP | $SSE_RES_FAILED ${SSE_RES_ERRORS} | $SSE_RES_MS | $SSE_RES_A | $SSE_RES_B | $SSE_RES_LEFT | $SSE_RES_DETAIL |")
      else
        MEM_ROWS+=("| outrigger pair (mTLS on) | failed — $SSE_RES_ERR | | | | | | | |")
      fi
      stop_pair "$PAIR_A_PID" "$PAIR_B_PID" "$PAIR_HOME"
    fi
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
    stop_pid "$S1_PID"; stop_pid "$S2_PID"
    if [[ $MTLS == 1 && $SSE_MTLS == 1 ]]; then
      # the same through an nginx mTLS pair (TLS 1.3, client certificates): what OpenSSL costs nginx
      free_port S1_PORT; free_port S2_PORT
      conf=$(nginx_conf_head sset2 "$PROXY_WORKERS")
      nginx_proxy_server "$S2_PORT" "$APP_PORT" / "" 1 in >>"$conf"
      start_nginx sset2 "$conf" "$S2_PORT"; S2_PID=$NGINX_PID
      conf=$(nginx_conf_head sset1 "$PROXY_WORKERS")
      nginx_proxy_server "$S1_PORT" "$S2_PORT" "$INVOKE_PREFIX/" / 1 out >>"$conf"
      start_nginx sset1 "$conf" "$S1_PORT"; S1_PID=$NGINX_PID
      if measure_sse "nginx mTLS pair" "$S1_PORT" "$INVOKE_PREFIX/sse" "$S1_PID" "$S2_PID" rss_tree_kb; then
        MEM_ROWS+=("| nginx mTLS pair (reference; master+workers) | $SSE_RES_OPEN / $SSE_N | $SSE_RES_APP | $SSE_RES_FAILED ${SSE_RES_ERRORS} | $SSE_RES_MS | $SSE_RES_A | $SSE_RES_B | $SSE_RES_LEFT | $SSE_RES_DETAIL |")
      else
        MEM_ROWS+=("| nginx mTLS pair (reference) | failed — $SSE_RES_ERR | | | | | | | |")
      fi
      stop_pid "$S1_PID"; stop_pid "$S2_PID"
    fi
  fi
fi

# ---------------------------------------------------------------------------------------------
# report
ELAPSED=$((SECONDS - T0))
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
HAS_O=0; has_path outrigger && HAS_O=1
HAS_OT=0; has_path outrigger-mtls && HAS_OT=1

path_name() {
  case $1 in
    direct) echo "direct (wrk → upstream)" ;;
    nginx) echo "nginx pair (baseline)" ;;
    outrigger) echo "outrigger pair, \`--enable-mtls=false\`" ;;
    nginx-mtls) echo "nginx mTLS pair (baseline)" ;;
    outrigger-mtls) echo "outrigger mTLS pair (default flags)" ;;
  esac
}
le() { awk -v a="$1" -v b="$2" 'BEGIN { print (a!="-" && b!="-" && a<=b) ? 1 : 0 }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { print (a!="-" && b!="-" && a>=b) ? 1 : 0 }'; }
diff_us() { awk -v a="$1" -v b="$2" 'BEGIN { if (a=="-"||b=="-") print "-"; else printf "%+.0f\n", a-b }'; }
# lat_table PATH... — latency at 1 connection for these paths
lat_table() {
  local p name add50 line pin_hdr="" pin_sep=""
  [[ $PINNED == 1 ]] && { pin_hdr=" p50 µs, 1 CPU | added p50 µs, 1 CPU | p99 µs, 1 CPU |"; pin_sep="---:|---:|---:|"; }
  echo "| path | p50 µs | added p50 µs | p99 µs | req/s |$pin_hdr"
  echo "|---|---:|---:|---:|---:|$pin_sep"
  for p in "$@"; do
    name=$(path_name "$p")
    if ! has_path "$p"; then echo "| $name | ${DEAD_REASON[$p]:+dropped: }${DEAD_REASON[$p]:-skipped} | | | |${pin_sep:+ | | |}"; continue; fi
    [[ $p == direct ]] && add50="—" || add50=$(fmt "$(med_added latency "$p" 5)")
    line="| $name | $(fmt "$(med latency "$p" 5)") | $add50 | $(fmt "$(med latency "$p" 6)") | $(fmt "$(med latency "$p" 4)") |"
    if [[ $PINNED == 1 ]]; then
      [[ $p == direct ]] && add50="—" || add50=$(fmt "$(med_added latency1cpu "$p" 5)")
      line+=" $(fmt "$(med latency1cpu "$p" 5)") | $add50 | $(fmt "$(med latency1cpu "$p" 6)") |"
    fi
    echo "$line"
  done
}
# thr_table BASELINE PATH... — throughput at CONNS connections, ratios to BASELINE
thr_table() {
  local base=$1 p name trps nrps
  shift
  echo "| path | req/s | vs $(path_name "$base" | sed 's/ (baseline)//') | same-round ratio (median) | p50 µs | p99 µs |"
  echo "|---|---:|---:|---:|---:|---:|"
  nrps=$(med throughput "$base" 4)
  for p in "$@"; do
    name=$(path_name "$p")
    if ! has_path "$p"; then echo "| $name | ${DEAD_REASON[$p]:+dropped: }${DEAD_REASON[$p]:-skipped} | | | | |"; continue; fi
    trps=$(med throughput "$p" 4)
    echo "| $name | $(fmt "$trps") | $(ratio "$trps" "$nrps") | $(fmt "$(med_ratio throughput "$p" "$base" 4)" 2) | $(fmt "$(med throughput "$p" 5)") | $(fmt "$(med throughput "$p" 6)") |"
  done
}
# targets BASELINE CANDIDATE LABEL — the latency and throughput targets of one comparison
targets() {
  local base=$1 cand=$2 label=$3 na oa nr orr
  echo "| target | measured | result |"
  echo "|---|---|---|"
  if has_path "$cand" && has_path "$base"; then
    na=$(med_added latency "$base" 5); oa=$(med_added latency "$cand" 5)
    echo "| $label added p50 ≤ nginx's, 1 connection | $(fmt "$oa") µs vs $(fmt "$na") µs (ratio $(ratio "$oa" "$na")) | $(pass "$(le "$oa" "$na")") |"
    if [[ $PINNED == 1 ]]; then
      na=$(med_added latency1cpu "$base" 5); oa=$(med_added latency1cpu "$cand" 5)
      echo "| same, all pinned to 1 CPU | $(fmt "$oa") µs vs $(fmt "$na") µs (ratio $(ratio "$oa" "$na")) | $(pass "$(le "$oa" "$na")") |"
    fi
    nr=$(med throughput "$base" 4); orr=$(med throughput "$cand" 4)
    echo "| $label req/s ≥ nginx's, $CONNS connections | $(fmt "$orr") vs $(fmt "$nr") (ratio $(ratio "$orr" "$nr"); same-round ratio $(fmt "$(med_ratio throughput "$cand" "$base" 4)" 2)) | $(pass "$(ge "$orr" "$nr")") |"
  else
    echo "| $label added p50 ≤ nginx's, 1 connection | nginx added p50 $(fmt "$(med_added latency "$base" 5)") µs | not run |"
    [[ $PINNED == 1 ]] && echo "| same, all pinned to 1 CPU | nginx added p50 $(fmt "$(med_added latency1cpu "$base" 5)") µs | not run |"
    echo "| $label req/s ≥ nginx's, $CONNS connections | nginx $(fmt "$(med throughput "$base" 4)") req/s | not run |"
  fi
}
# what turning mTLS on costs one implementation: added p50 and req/s, plain vs mTLS path
mtls_cost() { # mtls_cost NAME PLAIN MTLS
  has_path "$2" && has_path "$3" || return 0
  local s
  s="$1: added p50 $(diff_us "$(med_added latency "$3" 5)" "$(med_added latency "$2" 5)") µs"
  [[ $PINNED == 1 ]] && s+=" ($(diff_us "$(med_added latency1cpu "$3" 5)" "$(med_added latency1cpu "$2" 5)") µs pinned)"
  s+=", req/s at $CONNS connections ×$(ratio "$(med throughput "$3" 4)" "$(med throughput "$2" 4)")"
  echo "$s"
}
report() {
  local errs c1 c2 ok
  echo "# Outrigger benchmark results"
  echo
  echo "- run: $START_TS, ${ELAPSED}s; repo $GIT_REV; outrigger: ${OUT_VERSION}"
  echo "- machine: $(nproc) cores, ${CPU_MODEL:-?}, Linux $(uname -r); $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | cut -d' ' -f3), $(openssl version | cut -d' ' -f1-2), node $(node --version); load average before the run $LOAD_BEFORE"
  echo "- command: \`ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS THREADS=$THREADS PINNED=$PINNED MTLS=$MTLS SSE=$SSE bench/run.sh\` (latency = 1 connection, 1 wrk thread; throughput = $CONNS connections, $THREADS wrk threads)"
  echo "- nginx pairs: worker_processes $PROXY_WORKERS ($NGINX_WORKERS_EACH workers each), upstream keepalive, HTTP/1.1, reuseport; upstream nginx: worker_processes $UPSTREAM_WORKERS${SIDECAR_THREADS:+; sidecar threads: $SIDECAR_THREADS}"
  if [[ $MTLS == 1 ]]; then
    echo "- mTLS hop: nginx #1 → nginx #2 over ${NG2_TLS_INFO:-TLS 1.3}, client certificate both ways (throwaway CA, EC P-256 leaves), keepalive, session reuse; outrigger A → B over TLS 1.3 with SPIFFE X.509 SVIDs (EC P-256) from the sentry A or B started under their OUTRIGGER_HOME"
  fi
  [[ -n $OUTRIGGER_SKIP_REASON ]] && echo "- **outrigger skipped**: $OUTRIGGER_SKIP_REASON"
  [[ -n ${OUTRIGGER_MTLS_SKIP_REASON:-} ]] && echo "- **outrigger mTLS skipped**: $OUTRIGGER_MTLS_SKIP_REASON"
  local p
  for p in "${!DEAD_REASON[@]}"; do echo "- **$(path_name "$p") dropped**: ${DEAD_REASON[$p]}"; done
  echo
  echo "Medians of $ROUNDS interleaved rounds. Added p50 = path p50 − direct p50 in the same round, median over"
  echo "rounds (p99s are shown per path only: their differences are dominated by scheduler noise). \"1 CPU\" ="
  echo "the same with wrk and every server process (all threads) pinned to CPU $PIN_CPU: no cross-CPU wake-ups, so"
  echo "it is the CPU path length of a request and varies little between runs; the unpinned figures depend on"
  echo "where the scheduler puts each hop. The direct row is the same measurement in both comparisons."
  echo
  echo "## 1. Plain hop: outrigger pair (\`--enable-mtls=false\` on both) vs nginx pair"
  echo
  echo "### Latency at 1 connection"
  echo
  lat_table direct nginx outrigger
  echo
  echo "### Throughput at $CONNS connections"
  echo
  thr_table nginx direct nginx outrigger
  echo
  echo "### Targets (plain hop)"
  echo
  targets nginx outrigger "outrigger"
  if [[ $MTLS == 1 ]]; then
    echo
    echo "## 2. mTLS hop: outrigger pair (default flags, mTLS on) vs nginx mTLS pair"
    echo
    echo "### Latency at 1 connection"
    echo
    lat_table direct nginx-mtls outrigger-mtls
    echo
    echo "### Throughput at $CONNS connections"
    echo
    thr_table nginx-mtls direct nginx-mtls outrigger-mtls
    echo
    echo "### Targets (mTLS hop)"
    echo
    targets nginx-mtls outrigger-mtls "outrigger mTLS"
    c1=$(mtls_cost outrigger outrigger outrigger-mtls); c2=$(mtls_cost nginx nginx nginx-mtls)
    if [[ -n $c1$c2 ]]; then
      echo
      echo "What turning mTLS on costs each (mTLS path − plain path, same run): ${c1:+$c1}${c1:+${c2:+; }}${c2:+$c2}."
    fi
  fi
  echo
  errs=$(awk -F'\t' '{s+=$7} END {print s+0}' "$RAW")
  echo "wrk errors (connect/read/write/timeout, and non-2xx/3xx responses) over all measured runs: $errs."
  echo
  echo "## 3. Memory"
  echo
  echo "| target | measured | result |"
  echo "|---|---|---|"
  [[ $IDLE_A =~ ^[0-9]+$ && $IDLE_B =~ ^[0-9]+$ ]] || IDLE_A=""
  [[ $IDLE_TA =~ ^[0-9]+$ && $IDLE_TB =~ ^[0-9]+$ ]] || IDLE_TA=""
  if [[ -n $IDLE_A ]]; then
    echo "| idle RSS of one sidecar ≤ 8 MiB ($IDLE_RSS_TARGET_KB KiB), mTLS off | A $IDLE_A KiB, B $IDLE_B KiB | $(pass $(((IDLE_A > IDLE_B ? IDLE_A : IDLE_B) <= IDLE_RSS_TARGET_KB))) |"
  else
    echo "| idle RSS of one sidecar ≤ 8 MiB ($IDLE_RSS_TARGET_KB KiB), mTLS off | - | not run |"
  fi
  if [[ -n $IDLE_TA ]]; then
    echo "| idle RSS of one sidecar ≤ 8 MiB ($IDLE_RSS_TARGET_KB KiB), mTLS on (default) | A $IDLE_TA KiB, B $IDLE_TB KiB | $(pass $(((IDLE_TA > IDLE_TB ? IDLE_TA : IDLE_TB) <= IDLE_RSS_TARGET_KB))) |"
  elif [[ $MTLS == 1 ]]; then
    echo "| idle RSS of one sidecar ≤ 8 MiB ($IDLE_RSS_TARGET_KB KiB), mTLS on (default) | ${MEM_MTLS_ERR:--} | not run |"
  fi
  if [[ -n $SSE_A ]]; then

    ok=$(awk -v a="$SSE_A" -v b="$SSE_B" -v t="$SSE_PER_STREAM_TARGET_KB" -v o="$SSE_OUTRIGGER_OK" 'BEGIN{print (o==1 && a<=t && b<=t)?1:0}')
    echo "| RSS per idle SSE stream ≤ $SSE_PER_STREAM_TARGET_KB KiB, each sidecar, mTLS off (N=$SSE_N, all open end-to-end) | A $SSE_A KiB, B $SSE_B KiB | $(pass "$ok") |"
  else
    echo "| RSS per idle SSE stream ≤ $SSE_PER_STREAM_TARGET_KB KiB, each sidecar, mTLS off | - | not run |"
  fi
  if [[ -n $SSE_TA ]]; then
    ok=$(awk -v a="$SSE_TA" -v b="$SSE_TB" -v t="$SSE_PER_STREAM_TARGET_KB" -v o="$SSE_OUTRIGGER_MTLS_OK" 'BEGIN{print (o==1 && a<=t && b<=t)?1:0}')
    echo "| RSS per idle SSE stream ≤ $SSE_PER_STREAM_TARGET_KB KiB, each sidecar, mTLS on (N=$SSE_N, all open end-to-end) | A $SSE_TA KiB, B $SSE_TB KiB | $(pass "$ok") |"
  elif [[ $MTLS == 1 && $SSE_MTLS == 1 ]]; then
    echo "| RSS per idle SSE stream ≤ $SSE_PER_STREAM_TARGET_KB KiB, each sidecar, mTLS on | - | not run |"
  fi
  echo
  echo "Idle RSS: \`VmRSS\` of each sidecar 1 s after both answer healthz, before any traffic (a fresh pair for each mode)."
  [[ -n $RSS_AFTER_LOAD ]] && { echo; echo "Sidecar RSS after the latency/throughput runs (information): $RSS_AFTER_LOAD."; }
  if ((${#MEM_ROWS[@]})); then
    echo
    echo "### Idle SSE streams (N=$SSE_N)"
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
  [[ $MTLS != 1 ]] || ((HAS_OT)) || exit 1
  ! grep -q '\*\*FAIL\*\*' "$RESULTS" || exit 1
fi
exit 0
