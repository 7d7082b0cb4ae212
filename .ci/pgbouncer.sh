#!/usr/bin/env bash
# Starts or stops a PgBouncer in transaction mode in front of the local
# Postgres, on its own port with its own config, for the pooler tests:
#   .ci/pgbouncer.sh start [PORT]   # default 6433; prints the URL prefix to use
#   .ci/pgbouncer.sh stop [PORT]
# Any database name is passed through to 127.0.0.1:5432 (users postgres and root,
# trust auth, as on this machine). Installs Debian's pgbouncer when missing.
set -euo pipefail
cmd=${1:?start or stop}
PORT=${2:-6433}
dir=/tmp/usersync-pgbouncer-$PORT
UPSTREAM_HOST=${UPSTREAM_HOST:-127.0.0.1} UPSTREAM_PORT=${UPSTREAM_PORT:-5432}

stop() {
  if [ -f "$dir/pgbouncer.pid" ]; then
    kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$dir/pgbouncer.pid" ] || break; sleep 0.1; done
  fi
  rm -rf "$dir"
}

case "$cmd" in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: $0 start|stop [PORT]" >&2; exit 2 ;;
esac

if ! command -v pgbouncer >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer) >/dev/null
  # The package starts its own instance on 6432; ours runs beside it, untouched.
fi
stop
mkdir -p "$dir"
cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=$UPSTREAM_HOST port=$UPSTREAM_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
max_db_connections = 40
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
printf '"postgres" ""\n"root" ""\n' >"$dir/userlist.txt"
run_as=()
if [ "$(id -u)" = 0 ]; then
  chown -R postgres: "$dir" # PgBouncer refuses to run as root
  run_as=(runuser -u postgres --)
fi
"${run_as[@]}" pgbouncer -d "$dir/pgbouncer.ini"
for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p "$PORT" && break; sleep 0.1; done
pg_isready -q -h 127.0.0.1 -p "$PORT" || { cat "$dir/pgbouncer.log" >&2; exit 1; }
echo "postgres://postgres@127.0.0.1:$PORT"
