#!/usr/bin/env bash
# CI for the operations files: the Prometheus alert rules must load
# (promtool check rules) and pass their unit tests (promtool test rules).
# promtool comes with Debian's prometheus package; it is installed when
# missing, and its absence fails the build rather than skipping the checks.
# It then lints a running service's /metrics with promtool check metrics.
# (The Grafana dashboard and the rules' metric names are checked by
# metrics.TestRulesAndDashboardUseExportedSeries in go test.)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null; then
  echo "promtool not found; installing Debian's prometheus package"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) >/dev/null
fi
command -v promtool >/dev/null || { echo "promtool is still missing: cannot check the alert rules" >&2; exit 1; }

echo "== promtool check rules"
promtool check rules deploy/prometheus/usersync.rules.yml
echo "== promtool test rules"
(cd deploy/prometheus && promtool test rules usersync.rules.test.yml)

# promtool check metrics lints what /metrics really exports (names, types,
# help): the service runs on its embedded SQLite with a few deliveries and a
# refused login sync behind it, so the labelled series exist.
echo "== promtool check metrics (a running usersync's /metrics)"
work=$(mktemp -d)
go build -o "$work/usersync" ./cmd/usersync
port=18191
# exec: $! is the service itself, so the trap stops it.
(cd "$work" && PORT=$port LOG_LEVEL=warn exec ./usersync serve 2>serve.log) &
svc=$!
trap 'kill $svc 2>/dev/null || true; rm -rf "$work"' EXIT
# /readyz: /healthz answers while serve still opens the database.
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 $svc || { echo "usersync did not start:" >&2; cat "$work/serve.log" >&2; exit 1; }
(cd "$work" && PORT=$port ./usersync webhook send --id msg_ci_metrics >/dev/null &&
  PORT=$port ./usersync webhook send --id msg_ci_metrics >/dev/null)
curl -s -o /dev/null -X POST "http://127.0.0.1:$port/api/user/sync"
curl -fs "http://127.0.0.1:$port/metrics" >"$work/metrics.txt"
grep -q '^usersync_webhook_events_total{.*outcome="duplicate"' "$work/metrics.txt" ||
  { echo "/metrics lacks the deliveries just made" >&2; exit 1; }
promtool check metrics <"$work/metrics.txt"
