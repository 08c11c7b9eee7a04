#!/usr/bin/env bash
# Sets everything up and runs the quickstart: an MCP server and an MCP agent, each started with
# `outrigger run` beside its own sidecar; the agent's official MCP client calls the server by app id.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
(cd examples/quickstart && { [ -d node_modules ] || npm install --no-audit --no-fund --silent; })
bin=$PWD/build/outrigger
cd examples/quickstart
"$bin" run --app-id mcp-server --app-port 8000 --resources-path ./resources --config ./config.yaml \
  -- node server.mjs &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs -o /dev/null http://127.0.0.1:8000/ 2>/dev/null && break
  curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/mcp 2>/dev/null | grep -q '^[1-5]' && break
  sleep 0.2
done
"$bin" run --app-id my-agent --dapr-http-port 3500 -- node agent.mjs
