#!/usr/bin/env bash
# Measures usersync against its two yardsticks in one run, as bench/README.md
# reports it:
#   1. the durable ceiling: pgbench running bench/pgbench_webhook.sql,
#   2. the plain tuned ingester (bench/ingester) under loadgen webhooks,
#   3. usersync under the same load (and BEFORE, an older usersync binary,
#      when set, right after it), plus GET /healthz and fresh login syncs,
#   4. backfill: pgbench inserting client-sent 500-row pages with 2 clients,
#      then BenchmarkBackfill20k (20,000 users from a fake Clerk) on Postgres, and
#      BenchmarkBackfill20kLatency (the same against 200 ms a page, 100 requests/s).
# Each target starts from empty tables. Needs Go, psql and pgbench, and a
# Postgres where the role may CREATE DATABASE.
#   PGURL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable C=32 D=10 bench/run.sh
#   BEFORE=/tmp/usersync.old bench/run.sh     # compare with another build in the same run
#   BEFORE_TREE=../old bench/run.sh           # and another checkout's BenchmarkBackfill20k, right after this one's
#   PPROF=/tmp/cpu.pprof bench/run.sh         # also save a CPU profile of usersync under webhook load
#                                             # (usersync is then built with -tags pprof, for serve --pprof)
#   SKIP_BACKFILL=1 bench/run.sh
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
go build ${PPROF:+-tags pprof} -o "$work/usersync" ./cmd/usersync
go build -o "$work/loadgen" ./bench/loadgen
go build -o "$work/ingester" ./bench/ingester
DATABASE_URL="$DBURL" LOG_LEVEL=warn "$work/usersync" migrate
psql "$DBURL" -q -f bench/pgbench_setup.sql

num() { grep -o "\"$1\":[0-9.]*" | cut -d: -f2; }
empty() { psql "$DBURL" -qc "TRUNCATE users, webhook_events" >/dev/null; psql "$DBURL" -qc "VACUUM ANALYZE" >/dev/null; }
# up [PATH]: wait until PATH (default /healthz; usersync: /readyz, as /healthz answers before the database is open) answers 2xx.
up() { for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT${1:-/healthz}" >/dev/null 2>&1 && return; sleep 0.1; done; echo "no answer on $PORT" >&2; exit 1; }
stop() { kill "$svc"; wait "$svc" 2>/dev/null || true; svc=""; }
secret=whsec_$(head -c 32 /dev/urandom | base64)
ticks() { awk '{print $14 + $15}' "/proc/$svc/stat"; }  # user+system CPU of the target, 1/100 s
# pgticks: user+system CPU of all postgres processes (the server's backends), 1/100 s.
pgticks() { cat /proc/[0-9]*/stat 2>/dev/null | awk '$2 == "(postgres)" { t += $14 + $15 } END { print t + 0 }'; }
# idle: the machine's idle CPU time over all cores, 1/100 s.
idle() { awk '/^cpu / { print $5 + $6 }' /proc/stat; }
# snap: the three counters above, taken before a measurement.
snap() { echo "$(ticks) $(pgticks) $(idle)"; }
# cpu_per_event SNAP REPORT: the target's and Postgres' CPU µs per answered
# event, and the machine's idle share during the measurement.
cpu_per_event() {
  local n; n=$(echo "$2" | num requests)
  echo "$1 $(snap) $n $(echo "$2" | num seconds) $(nproc)" | awk '{ n = ($7 > 0 ? $7 : 1)
    printf "%d %d %.0f", ($4 - $1) * 10000 / n, ($5 - $2) * 10000 / n, ($6 - $3) / ($8 * $9) }'
}
# all2xx REPORT: fail the run when a measurement counted answers that were not 2xx (a rate of refusals measures nothing).
all2xx() {
  local bad; bad=$(echo "$1" | grep -o '"status":{[^}]*}' | grep -o '"[0-9]*":' | tr -d '":' | grep -v '^2' || true)
  if [ -n "$bad" ]; then echo "answers other than 2xx ($bad): $1" >&2; exit 1; fi
  echo "$1"
}
hooks() { all2xx "$("$work/loadgen" webhooks -url "http://127.0.0.1:$PORT/api/webhooks/clerk" -secret "$secret" -c "$C" -d "${D}s" -json)"; }

echo "== pgbench ceiling: c=$C, ${D}s"
# Two transactions inserting the same new user can collide on the email index
# (ON CONFLICT names only the primary key), which aborts pgbench: run again.
for _ in 1 2 3; do
  empty
  ceiling=$(pgbench -n -M prepared -c "$C" -j 2 -T "$D" -f bench/pgbench_webhook.sql "$DBURL" |
    sed -n 's/^tps = \([0-9.]*\) .*/\1/p' || true)
  [ -n "$ceiling" ] && break
done
echo "tps $ceiling"

echo "== plain tuned ingester (bench/ingester): c=$C, ${D}s"
empty
CLERK_WEBHOOK_SIGNING_SECRET="$secret" "$work/ingester" -db "$DBURL" -addr "127.0.0.1:$PORT" &
svc=$!; up
t0=$(snap); plain=$(hooks); echo "$plain"; read -r plain_cpu plain_pg plain_idle <<<"$(cpu_per_event "$t0" "$plain")"
stop

# serve BINARY [FLAG...] starts a usersync build on $PORT with the bench configuration.
serve() {
  local bin=$1; shift
  DATABASE_URL="${SERVE_DB:-$DBURL}" PORT=$PORT LOG_LEVEL=warn CLERK_WEBHOOK_SIGNING_SECRET="$secret" \
    CLERK_SECRET_KEY=sk_test_usersync_fake CLERK_API_URL="http://$CLERK_ADDR" \
    SYNC_FRESHNESS=1h SYNC_RATE_LIMIT=0 SYNC_RECONCILE_INTERVAL=0 CLERK_API_RATE=1000000/1s "$bin" serve "$@" &
  svc=$!; up /readyz
}

before=""
if [ -n "${BEFORE:-}" ]; then
  echo "== usersync BEFORE ($BEFORE) webhooks: c=$C, ${D}s"
  # A database of its own, migrated by BEFORE: the two builds' schemas may differ.
  BEFORE_DB="${PGURL%/*}/usersync_bench_before?sslmode=disable"
  psql "$PGURL" -qc "DROP DATABASE IF EXISTS usersync_bench_before WITH (FORCE)" -c "CREATE DATABASE usersync_bench_before" >/dev/null
  SERVE_DB="$BEFORE_DB" serve "$BEFORE"
  t0=$(snap); before=$(hooks); echo "$before"; read -r before_cpu before_pg before_idle <<<"$(cpu_per_event "$t0" "$before")"
  before_rss=$(awk '/VmHWM/ {print $2}' "/proc/$svc/status")
  stop
  psql "$PGURL" -qc "DROP DATABASE usersync_bench_before WITH (FORCE)" >/dev/null
fi

echo "== usersync webhooks: c=$C, ${D}s"
empty; serve "$work/usersync" ${PPROF:+--pprof 127.0.0.1:16060}
if [ -n "${PPROF:-}" ]; then
  curl -fs "http://127.0.0.1:16060/debug/pprof/profile?seconds=$((D - 2))" -o "$PPROF" &
  prof=$!
fi
t0=$(snap); hooks=$(hooks); echo "$hooks"; read -r cpu pg idle_pct <<<"$(cpu_per_event "$t0" "$hooks")"
[ -n "${PPROF:-}" ] && wait "$prof" && echo "CPU profile: $PPROF"
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$svc/status")

echo "== GET /healthz: c=$C, ${D}s"
health=$(all2xx "$("$work/loadgen" get -url "http://127.0.0.1:$PORT/healthz" -c "$C" -d "${D}s" -json)")
echo "$health"

echo "== login syncs answered fresh: c=$C, ${D}s (after a warm-up that creates the users)"
# One key file for both runs: the service caches the fake Clerk's JWKS from the first.
logins() { "$work/loadgen" login -url "http://127.0.0.1:$PORT/api/user/sync" -clerk-addr "$CLERK_ADDR" -key "$work/clerk-key.pem" -users 500 "$@" -json; }
logins -c 8 -d 3s >/dev/null
login=$(all2xx "$(logins -c "$C" -d "${D}s")")
echo "$login"
stop

bf_ceiling=0; bf_rate=0; bf_latency_ratio=0
if [ -z "${SKIP_BACKFILL:-}" ]; then
  echo "== backfill ceiling: pgbench, client-sent 500-row INSERT … VALUES, 2 clients, ${D}s"
  empty
  payload=$(psql "$DBURL" -Atc "SELECT bench_payload()" | sed "s/'/''/g")
  {
    echo '\set base random(1, 1000000000)'
    printf 'INSERT INTO users (id, email, first_name, last_name, image_url, tier, clerk_updated_at, created_at, updated_at, sync_source, email_verified, raw_json, synced_at) VALUES\n'
    for i in $(seq 500); do
      sep=","; [ "$i" = 500 ] && sep=" ON CONFLICT (id) DO NOTHING;"
      printf "('bf_' || :base || '_%d', 'bf' || :base || '_%d@example.com', 'Load', 'Tester', 'https://img.clerk.com/x', 'FREE', 1, now(), now(), 'backfill', true, '%s', now())%s\n" "$i" "$i" "$payload" "$sep"
    done
  } >"$work/backfill.sql"
  pages=$(pgbench -n -c 2 -j 2 -T "$D" -f "$work/backfill.sql" "$DBURL" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
  bf_ceiling=$(awk -v t="$pages" 'BEGIN { printf "%.0f", t * 500 }')
  echo "rows/s $bf_ceiling"
  echo "== backfill: BenchmarkBackfill20k/postgres (20,000 users, fake Clerk in process)"
  bf=$(TEST_DATABASE_URL="${PGURL%/*}/postgres?sslmode=disable" go test -run '^$' -bench 'Backfill20k$/postgres' -benchtime 3x ./backfill/ | tee /dev/stderr)
  bf_rate=$(echo "$bf" | sed -n 's/.* \([0-9.]*\) users\/s.*/\1/p' | head -1)
  if [ -n "${BEFORE_TREE:-}" ]; then
    echo "== backfill BEFORE: BenchmarkBackfill20k/postgres in $BEFORE_TREE"
    bfb=$(cd "$BEFORE_TREE" && TEST_DATABASE_URL="${PGURL%/*}/postgres?sslmode=disable" go test -run '^$' -bench 'Backfill20k$/postgres' -benchtime 3x ./backfill/ | tee /dev/stderr)
    bf_before=$(echo "$bfb" | sed -n 's/.* \([0-9.]*\) users\/s.*/\1/p' | head -1)
  fi
  echo "== backfill against Clerk's latency: BenchmarkBackfill20kLatency/postgres (200 ms a page, 100 requests/s)"
  bfl=$(TEST_DATABASE_URL="${PGURL%/*}/postgres?sslmode=disable" go test -run '^$' -bench 'Backfill20kLatency/postgres' -benchtime 3x ./backfill/ | tee /dev/stderr)
  bf_latency_ratio=$(echo "$bfl" | sed -n 's/.* \([0-9.]*\) ratio.*/\1/p' | head -1)
fi

rate=$(echo "$hooks" | num rate_per_second)
p99=$(echo "$hooks" | num p99_ms)
plain_rate=$(echo "$plain" | num rate_per_second)
plain_p99=$(echo "$plain" | num p99_ms)
hz=$(echo "$health" | num rate_per_second)
fresh=$(echo "$login" | num rate_per_second)
echo
echo "== summary ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg))"
awk -v c="$ceiling" -v r="$rate" -v p="$p99" -v rss="$rss_kib" -v hz="$hz" -v f="$fresh" -v conc="$C" \
    -v pr="$plain_rate" -v pp="$plain_p99" -v bc="$bf_ceiling" -v br="$bf_rate" -v pc="$plain_cpu" -v uc="$cpu" \
    -v ppg="$plain_pg" -v pid="$plain_idle" -v upg="$pg" -v uid="$idle_pct" -v blr="$bf_latency_ratio" 'BEGIN {
  printf "pgbench ceiling       %8.0f tx/s (c=%d)\n", c, conc
  printf "plain ingester        %8.0f events/s  = %.2f x ceiling, p99 %.1f ms\n", pr, pr / c, pp
  printf "usersync webhooks     %8.0f events/s  = %.2f x plain ingester (goal >= 1.20), %.2f x ceiling\n", r, r / pr, r / c
  printf "webhook p99           %8.1f ms (goal < 50)\n", p
  printf "CPU per event         %8d us usersync, %d us its Postgres, machine %d%% idle\n", uc, upg, uid
  printf "                      %8d us plain ingester, %d us its Postgres, machine %d%% idle\n", pc, ppg, pid
  printf "service peak RSS      %8.1f MiB (goal <= 64)\n", rss / 1024
  printf "GET /healthz          %8.0f req/s\n", hz
  printf "login sync, fresh     %8.0f req/s = %.2f x healthz (goal >= 0.5)\n", f, f / hz
  if (bc > 0) printf "backfill              %8.0f users/s = %.2f x client-sent ceiling %.0f rows/s (goal >= 0.7)\n", br, br / bc, bc
  if (blr > 0) printf "backfill, 200 ms/page %8.2f x the same backfill with no latency (goal >= 0.8)\n", blr
}'
if [ -n "${bf_before:-}" ]; then
  awk -v b="$bf_before" -v r="$bf_rate" -v bc="$bf_ceiling" 'BEGIN {
    printf "BEFORE backfill       %8.0f users/s = %.2f x client-sent ceiling (after/before rate %.2f)\n", b, b / bc, r / b }'
fi
if [ -n "$before" ]; then
  b=$(echo "$before" | num rate_per_second); bp=$(echo "$before" | num p99_ms)
  awk -v b="$b" -v bp="$bp" -v pr="$plain_rate" -v r="$rate" -v rss="$before_rss" -v bc="$before_cpu" -v bpg="$before_pg" 'BEGIN {
    printf "BEFORE webhooks       %8.0f events/s  = %.2f x plain ingester, p99 %.1f ms, RSS %.1f MiB, %d us CPU/event, %d us its Postgres (after/before rate %.2f)\n", b, b / pr, bp, rss / 1024, bc, bpg, r / b }'
fi
