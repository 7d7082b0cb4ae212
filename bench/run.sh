#!/usr/bin/env bash
# Measures ingest and login performance on this machine, as README
# "Performance and reliability" reports it:
#   1. the durable ceiling: pgbench running bench/pgbench_webhook.sql,
#   2. usersync end to end: loadgen webhooks against a running service,
#   3. GET /healthz and fresh login syncs on the same server.
# Needs Go, psql and pgbench, and a Postgres where the role may CREATE DATABASE.
#   PGURL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable C=32 D=10 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
C=${C:-32}            # concurrency
D=${D:-10}            # seconds per measurement
PORT=${PORT:-18080}
CLERK_ADDR=127.0.0.1:19911
DBURL="${PGURL%/*}/usersync_bench?sslmode=disable"
work=$(mktemp -d); svc=""
trap 'kill $svc 2>/dev/null || true; rm -rf "$work"' EXIT

psql "$PGURL" -qc "DROP DATABASE IF EXISTS usersync_bench WITH (FORCE)" -c "CREATE DATABASE usersync_bench" >/dev/null
go build -o "$work/usersync" ./cmd/usersync
go build -o "$work/loadgen" ./cmd/loadgen
DATABASE_URL="$DBURL" LOG_LEVEL=warn "$work/usersync" migrate
psql "$DBURL" -q -f bench/pgbench_setup.sql

num() { grep -o "\"$1\":[0-9.]*" | cut -d: -f2; }

echo "== pgbench ceiling: c=$C, ${D}s"
ceiling=$(pgbench -n -M prepared -c "$C" -j 2 -T "$D" -f bench/pgbench_webhook.sql "$DBURL" |
  sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
echo "tps $ceiling"

secret=whsec_$(head -c 32 /dev/urandom | base64)
DATABASE_URL="$DBURL" PORT=$PORT LOG_LEVEL=warn CLERK_WEBHOOK_SIGNING_SECRET="$secret" \
  CLERK_SECRET_KEY=sk_test_usersync_fake CLERK_API_URL="http://$CLERK_ADDR" \
  SYNC_FRESHNESS=1h SYNC_RATE_LIMIT=0 "$work/usersync" serve &
svc=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

echo "== usersync webhooks: c=$C, ${D}s"
hooks=$("$work/loadgen" webhooks -url "http://127.0.0.1:$PORT/api/webhooks/clerk" -secret "$secret" -c "$C" -d "${D}s" -json)
echo "$hooks"
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$svc/status")

echo "== GET /healthz: c=$C, ${D}s"
health=$("$work/loadgen" get -url "http://127.0.0.1:$PORT/healthz" -c "$C" -d "${D}s" -json)
echo "$health"

echo "== login syncs answered fresh: c=$C, ${D}s (after a warm-up that creates the users)"
"$work/loadgen" login -url "http://127.0.0.1:$PORT/api/user/sync" -clerk-addr "$CLERK_ADDR" -users 500 -c 8 -d 3s -json >/dev/null
login=$("$work/loadgen" login -url "http://127.0.0.1:$PORT/api/user/sync" -clerk-addr "$CLERK_ADDR" -users 500 -c "$C" -d "${D}s" -json)
echo "$login"

rate=$(echo "$hooks" | num rate_per_second)
p99=$(echo "$hooks" | num p99_ms)
hz=$(echo "$health" | num rate_per_second)
fresh=$(echo "$login" | num rate_per_second)
echo
echo "== summary ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
awk -v c="$ceiling" -v r="$rate" -v p="$p99" -v rss="$rss_kib" -v hz="$hz" -v f="$fresh" -v conc="$C" 'BEGIN {
  printf "pgbench ceiling       %8.0f tx/s (c=%d)\n", c, conc
  printf "usersync webhooks     %8.0f events/s  = %.2f x ceiling (goal >= 0.8)\n", r, r / c
  printf "webhook p99           %8.1f ms (goal < 50)\n", p
  printf "service peak RSS      %8.1f MiB (goal <= 64)\n", rss / 1024
  printf "GET /healthz          %8.0f req/s\n", hz
  printf "login sync, fresh     %8.0f req/s = %.2f x healthz (goal >= 0.5)\n", f, f / hz
}'
