#!/usr/bin/env bash
# CI for the operations files: the Prometheus alert rules must load
# (promtool check rules) and pass their unit tests (promtool test rules).
# promtool comes with Debian's prometheus package; it is installed when
# missing, and its absence fails the build rather than skipping the checks.
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
