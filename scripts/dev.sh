#!/usr/bin/env bash
# make dev: every subgraph in one Python process (SQLite per service under .data/, in-process
# event bus, local Ray with its dashboard on :8265) plus the router on :4000. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
export OPSC_DATA_DIR="${OPSC_DATA_DIR:-$PWD/.data}"
export OPSC_LOG_JSON="${OPSC_LOG_JSON:-0}"
mkdir -p "$OPSC_DATA_DIR"
# Service secrets: `opsconductor dev` generates one per service at each start and keeps them in
# memory (OPSC_SERVICE_SECRET_<NAME> set here wins). The old shared OPSC_SERVICE_SECRET is refused.
unset OPSC_SERVICE_SECRET
# make dev is a single-machine lab: targets on this machine's loopback may be reached, the
# platform's own ports never (services, database, Redis, router, Ray dashboard, UI; review M11).
export OPSC_TARGETS_ALLOW_NETWORKS="${OPSC_TARGETS_ALLOW_NETWORKS-127.0.0.0/8}"
export OPSC_TARGETS_PLATFORM_ENDPOINTS="${OPSC_TARGETS_PLATFORM_ENDPOINTS-127.0.0.1:4000,127.0.0.1:8265,127.0.0.1:8080}"
# Router -> auth: signs the client IP the router forwards (L2); a new one each start.
OPSC_CLIENT_IP_SECRET="${OPSC_CLIENT_IP_SECRET:-$(head -c 32 /dev/urandom | base64)}"; export OPSC_CLIENT_IP_SECRET

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping OpsConductor..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

log="$OPSC_DATA_DIR/services.log"
.venv/bin/opsconductor dev > >(tee "$log") 2>&1 &
pids+=($!)
for _ in $(seq 1 240); do
  grep -q OPSCONDUCTOR_READY "$log" 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "services failed to start; see $log"; exit 1; }
  sleep 0.5
done

export OPSC_UI_PORT="${OPSC_UI_PORT:-8080}"
(cd router && OPSC_ROUTER_PORT="${OPSC_ROUTER_PORT:-4000}" node_modules/.bin/hive-gateway supergraph supergraph.graphql) &
pids+=($!)
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:${OPSC_ROUTER_PORT:-4000}/readiness" >/dev/null 2>&1 && break
  sleep 0.5
done

# The web UI (frontend/dist, built by `make ui`): static files on :8080; the browser talks to the router.
.venv/bin/python scripts/ui_server.py --port "$OPSC_UI_PORT" \
  --router "http://127.0.0.1:${OPSC_ROUTER_PORT:-4000}/graphql" &
pids+=($!)

# Ray (2.59+) turns token auth on for a local cluster: the dashboard asks for the token, which
# `ray get-auth-token` prints (~/.ray/auth_token unless RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH say otherwise).
if [[ "${RAY_AUTH_MODE:-}" == disabled ]]; then
  ray_token_hint="no token needed (RAY_AUTH_MODE=disabled)"
else
  ray_token_hint="it asks for a token; this prints it: $PWD/.venv/bin/ray get-auth-token"
fi

cat <<MSG

  OpsConductor is running.
    Web UI:                                 http://127.0.0.1:${OPSC_UI_PORT}
    GraphQL (router, GraphiQL/Laboratory): http://127.0.0.1:${OPSC_ROUTER_PORT:-4000}/graphql
      (Collections: "OpsConductor: first five operations", the README's walk-through)
    Ray dashboard:                          http://127.0.0.1:8265
      $ray_token_hint
    Subgraphs: auth :3000  users :3002  targets :3001  jobs :8001  executions :8002  schedules :8003  audit :8004
    Admin login: username 'admin'; the password is \$OPSC_ADMIN_PASSWORD, or the one printed above on first start.
    Data: $OPSC_DATA_DIR   Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
