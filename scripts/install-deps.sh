#!/usr/bin/env bash
# Installs what building and testing outrigger needs: Debian packages (only the missing ones;
# `apt-get update` runs only then) and the e2e suite's npm packages (tests/e2e, from its lockfile;
# skipped when node_modules already matches the lockfile). Idempotent and fast when done.
#
# Usage: scripts/install-deps.sh [--no-npm]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
E2E="$ROOT/tests/e2e"

APT_PKGS=(
  build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
  libuv1-dev libhttp-parser-dev libjansson-dev libyaml-dev libsqlite3-dev libssl-dev
  nginx-light wrk sqlite3 openssl prometheus
)

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
log() { printf 'install-deps: %s\n' "$*"; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

apt_install() { # apt_install PKG... : installs without letting package scripts start services
  local created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  local rc=0
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" || rc=$?
  [ "$created_policy" -eq 0 ] || "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
  return "$rc"
}

# Debian's nginx service must not run (it would hold port 80 and confuse benchmarks). Stop only
# that instance (systemd unit / default pid file), never nginx processes started by our own tools.
stop_debian_nginx() {
  if command -v systemctl >/dev/null 2>&1; then
    "${SUDO[@]}" systemctl stop nginx >/dev/null 2>&1 || true
    "${SUDO[@]}" systemctl disable nginx >/dev/null 2>&1 || true
  fi
  local pidf=/run/nginx.pid
  if [ -s "$pidf" ]; then
    local pid
    pid="$(cat "$pidf")"
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q '^nginx: master'; then
      log "stopping Debian nginx service (pid $pid)"
      "${SUDO[@]}" kill -QUIT "$pid" 2>/dev/null || true
    fi
  fi
}

# --- Debian packages --------------------------------------------------------------------------
missing=()
for p in "${APT_PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm) # fallback only; the machines come with Node 20
fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  apt_install "${missing[@]}"
  stop_debian_nginx
else
  log "apt: all ${#APT_PKGS[@]} packages present"
fi

# --- npm packages for the e2e suite ------------------------------------------------------------
if [ "${1:-}" = "--no-npm" ]; then exit 0; fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || log "warning: Node $(node -v) is older than the suite's Node 20"

cd "$E2E"
stamp="node_modules/.outrigger-install-stamp"
if [ -f package-lock.json ]; then
  want="$(sha256sum package.json package-lock.json | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "npm: tests/e2e/node_modules up to date"
    exit 0
  fi
  log "npm: npm ci in tests/e2e"
  npm ci --no-audit --no-fund --loglevel=error
else
  log "npm: no lockfile, npm install in tests/e2e"
  npm install --no-audit --no-fund --loglevel=error
  want="$(sha256sum package.json package-lock.json | sha256sum | cut -d' ' -f1)"
fi
echo "$want" >"$stamp"
log "npm: done"
