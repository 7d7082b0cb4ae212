#!/usr/bin/env bash
# The webhook phase of bench/run.sh alone, for A/B comparisons of builds:
# a fresh database, usersync BINARY serving it, 10 s of signed webhooks at
# c=32, then events/s and the CPU of the service and of Postgres. Run the
# builds in turn, several times (A B A B …): this VM moves ±10 % between runs.
#   bench/ab.sh /tmp/usersync.a; bench/ab.sh /tmp/usersync.b
#   bench/ab.sh /tmp/usersync.a '&default_query_exec_mode=cache_describe'   # extra DATABASE_URL parameters
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1; params=${2:-}
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
C=${C:-32} D=${D:-10} PORT=${PORT:-18099}
work=$(mktemp -d); svc=""
trap 'kill $svc 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/loadgen" ./bench/loadgen
psql "$PGURL" -qc "DROP DATABASE IF EXISTS usersync_ab WITH (FORCE)" -c "CREATE DATABASE usersync_ab" >/dev/null 2>&1
db="${PGURL%/*}/usersync_ab?sslmode=disable$params"
secret=whsec_$(head -c 32 /dev/urandom | base64)
DATABASE_URL="$db" PORT=$PORT LOG_LEVEL=error CLERK_WEBHOOK_SIGNING_SECRET="$secret" SYNC_RECONCILE_INTERVAL=0 \
  "$bin" serve >/dev/null 2>&1 &
svc=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
psql "${PGURL%/*}/usersync_ab?sslmode=disable" -qc "VACUUM ANALYZE" >/dev/null
pg() { cat /proc/[0-9]*/stat 2>/dev/null | awk '$2 == "(postgres)" { t += $14 + $15 } END { print t + 0 }'; }
s0=$(awk '{print $14 + $15}' "/proc/$svc/stat"); p0=$(pg)
out=$("$work/loadgen" webhooks -url "http://127.0.0.1:$PORT/api/webhooks/clerk" -secret "$secret" -c "$C" -d "${D}s" -json)
s1=$(awk '{print $14 + $15}' "/proc/$svc/stat"); p1=$(pg)
echo "$out" | awk -v b="$bin" -v s=$((s1 - s0)) -v p=$((p1 - p0)) '{
  match($0, /"requests":[0-9]+/); n = substr($0, RSTART + 11, RLENGTH - 11)
  match($0, /"rate_per_second":[0-9.]+/); r = substr($0, RSTART + 18, RLENGTH - 18)
  printf "%s: %.0f events/s, %d us usersync and %d us Postgres CPU per event\n", b, r, s * 10000 / n, p * 10000 / n }'
echo "$out" | grep -q '"status":{"200":[0-9]*}' || { echo "answers other than 200: $out" >&2; exit 1; }
psql "$PGURL" -qc "DROP DATABASE usersync_ab WITH (FORCE)" >/dev/null
