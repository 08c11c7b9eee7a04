# bench/lib.sh — the shell pieces the bench scripts share; sourced, never run on its own.
#
#   BENCH_NAME=middleware                 # log lines start "[middleware-bench HH:MM:SS]"
#   source "$BENCH_DIR/lib.sh"
#   need_tools wrk nginx node curl ss     # die unless each is on PATH
#   bench_tmp outrigger-mw-bench          # TMP=/tmp/outrigger-mw-bench.XXXXXX
#
#   spawn LOG CMD...                  start CMD in the background, output to LOG; pid in SPAWNED
#   free_port VAR                     a free 127.0.0.1 port (20000-31999, below the ephemeral
#                                     range, never handed out twice) into VAR
#   wait_healthz PORT PID NAME LOG    wait until GET /v1.0/healthz answers 204; die (with the
#                                     tail of LOG) if PID exits first or after 15 s
#   start_upstream PORT [SERVERS]     nginx (under $TMP/up) answering every request on
#                                     127.0.0.1:PORT with $MCP_RESULT; SERVERS is more nginx
#                                     `server { }` text for the same http block
#
# On exit (and Ctrl-C) every spawned process gets SIGTERM, newest first, and is waited for; then
# TMP is removed.

log() { printf '[%s-bench %s] %s\n' "${BENCH_NAME:-bench}" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need_tools() {
  local tool
  for tool in "$@"; do command -v "$tool" >/dev/null || die "missing tool: $tool"; done
}

PIDS=()
bench_cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[i]}" 2>/dev/null || true; done
  for i in "${PIDS[@]}"; do wait "$i" 2>/dev/null || true; done
  if [[ -n ${TMP:-} ]]; then rm -rf "$TMP"; fi
}
bench_tmp() {
  TMP=$(mktemp -d "/tmp/$1.XXXXXX")
  trap bench_cleanup EXIT
  trap 'exit 130' INT
}

spawn() { local logf=$1; shift; "$@" >"$logf" 2>&1 & SPAWNED=$!; PIDS+=("$SPAWNED"); }
declare -A TAKEN=()
free_port() {
  local p _
  for _ in $(seq 500); do
    p=$((20000 + RANDOM % 12000))
    [[ -n ${TAKEN[$p]:-} ]] && continue
    if [[ -z $(ss -Htan "( sport = :$p )" 2>/dev/null) ]]; then TAKEN[$p]=1; printf -v "$1" '%s' "$p"; return 0; fi
  done
  die "no free port"
}
wait_healthz() { # PORT PID NAME LOG
  local i
  for i in $(seq 150); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/v1.0/healthz") == 204 ]] && return 0
    kill -0 "$2" 2>/dev/null || { tail -n 20 "$4" >&2; die "$3 exited during start-up"; }
    sleep 0.1
  done
  die "$3 did not become healthy"
}
start_upstream() {
  mkdir -p "$TMP/up/logs" "$TMP/up/tmp"
  cat >"$TMP/up/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $TMP/up/nginx.pid;
error_log $TMP/up/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/up/tmp/body;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$1;
    location / { default_type application/json; return 200 '$MCP_RESULT'; }
  }
${2:-}
}
EOF
  spawn "$TMP/up.log" nginx -c "$TMP/up/nginx.conf" -e "$TMP/up/logs/error.log"
}
