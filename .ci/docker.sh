#!/usr/bin/env bash
# CI for the container image: builds the Dockerfile with no registry (the Go
# module download aside) and runs the image against the CI Postgres and on its
# embedded SQLite with a volume, checking /healthz, /readyz, a signed webhook
# read back from each database, the development secret surviving a new
# container, a non-root process, HEALTHCHECK turning healthy and the image
# size (under 40 MB). Any failed check fails the script.
#
# It runs its own dockerd (vfs, no iptables, no bridge: every container uses
# the host network) with its own socket, stopped at the end. The data root is
# kept between runs (USERSYNC_DOCKER_ROOT) so the base image and the layer
# cache are reused; runs sharing it take turns.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

ROOT=${USERSYNC_DOCKER_ROOT:-/var/tmp/usersync-ci-docker}
IMAGE=usersync:ci
PGHOST=127.0.0.1 PGPORT=5432 DB=usersync_docker
PG_PORT=18211 LITE_PORT=18212 # the two services' HTTP ports on the host network
VOLUME=usersync-ci-data
SAMPLE_USER=user_2usersyncSampleUser000001 # the user webhook send's sample event carries

check() { echo "ok: $*"; }
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

if ! command -v dockerd >/dev/null; then
  echo "dockerd not found; installing Debian's docker.io"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io) >/dev/null
fi
for tool in docker dockerd curl psql sqlite3 openssl; do
  command -v $tool >/dev/null || fail "$tool is missing"
done

echo "== docker: our own dockerd (data root $ROOT)"
mkdir -p "$ROOT"
exec 9>"$ROOT.lock"
flock 9 # one dockerd per data root
run=$(mktemp -d /tmp/usersync-dockerd.XXXXXX)
export DOCKER_HOST=unix://$run/docker.sock
cleanup() {
  docker rm -f usersync-ci-pg usersync-ci-lite >/dev/null 2>&1 || true
  if [ -f "$run/dockerd.pid" ]; then
    kill "$(cat "$run/dockerd.pid")" 2>/dev/null || true
    for _ in $(seq 100); do [ -f "$run/dockerd.pid" ] || break; sleep 0.2; done
  fi
  # dockerd leaves its network namespace mounted under the exec root.
  awk -v d="$run/" 'index($2, d) == 1 {print $2}' /proc/mounts | xargs -r umount
  rm -rf "$run"
}
trap cleanup EXIT
dockerd --storage-driver=vfs --iptables=false --bridge=none --data-root "$ROOT" --exec-root "$run/exec" \
  --host "$DOCKER_HOST" --pidfile "$run/dockerd.pid" >"$run/dockerd.log" 2>&1 &
for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
docker version >/dev/null 2>&1 || {
  tail -20 "$run/dockerd.log" >&2
  fail "dockerd did not start"
}

# The build stage's base image, made from this machine's Go toolchain: its
# tag is the Dockerfile's, kept while the Go version is the same.
base=$(awk '$1 == "FROM" && $2 ~ /^golang:/ {print $2; exit}' Dockerfile)
gover=$(go env GOVERSION)
tagver=${base#golang:}
tagver=${tagver%%-*} # 1.26 of golang:1.26-alpine
case "$gover" in go"$tagver".* | go"$tagver") ;; *) fail "Dockerfile wants $base, but this machine has $gover" ;; esac
have=$(docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$base" 2>/dev/null | sed -n 's/^GOLANG_VERSION=//p' || true)
if [ "$have" = "${gover#go}" ]; then
  echo "== docker: $base is already $gover"
else
  echo "== docker: $base from this machine's $gover, busybox-static and the CA bundle (docker import)"
  [ -x /bin/busybox ] && /bin/busybox --list >/dev/null ||
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static) >/dev/null
  rootfs=$run/rootfs
  mkdir -p "$rootfs"/{bin,etc/ssl/certs,tmp,go,root,usr/local}
  chmod 1777 "$rootfs/tmp"
  # The toolchain without its own tests and command sources: a build of
  # usersync reads neither, and every vfs layer copies what is here.
  tar -C "$(dirname "$(go env GOROOT)")" --exclude=go/test --exclude=go/api --exclude=go/src/cmd \
    --exclude='testdata' -cf - "$(basename "$(go env GOROOT)")" | tar -C "$rootfs/usr/local" -xf -
  [ "$(basename "$(go env GOROOT)")" = go ] || fail "GOROOT $(go env GOROOT) is not named go"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"; done
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
  echo 'root:x:0:' >"$rootfs/etc/group"
  # The same environment as the official image.
  tar -C "$rootfs" -cf - . | docker import \
    --change "ENV GOLANG_VERSION=${gover#go}" --change 'ENV GOTOOLCHAIN=local' --change 'ENV GOPATH=/go' \
    --change 'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'WORKDIR /go' --change 'CMD ["/bin/sh"]' - "$base" >/dev/null
  rm -rf "$rootfs"
fi

version=$(git describe --tags --always --dirty 2>/dev/null || echo ci)
echo "== docker: build $IMAGE (VERSION=$version; the classic builder, host network for the module download)"
build_started=$(date +%s)
# The log, each line stamped with the second it arrived: the steps are shown
# with how long each took, the whole log when the build fails.
if ! DOCKER_BUILDKIT=0 docker build --network host --build-arg VERSION="$version" -t "$IMAGE" . 2>&1 |
  while IFS= read -r line; do echo "$(date +%s) $line"; done >"$run/build.log"; then
  tail -40 "$run/build.log" >&2
  fail "docker build"
fi
awk -v end="$(date +%s)" '
  / Step / { if (step != "") printf "%4d s  %s\n", $1 - t, step; t = $1; $1 = ""; step = substr($0, 2, 100) }
  / Using cache/ { step = step "  (cached)" }
  END { printf "%4d s  %s\n", end - t, step }' "$run/build.log"
echo "build took $(($(date +%s) - build_started)) s"
# Tag the build stage so pruning keeps its layers (the compiled modules)
# for the next run; prune what earlier runs left untagged.
DOCKER_BUILDKIT=0 docker build -q --network host --build-arg VERSION="$version" --target build -t usersync-ci-build . >/dev/null 2>&1 ||
  fail "tag the build stage"
docker image prune -f >/dev/null

size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo "image size: $size bytes ($(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1e6}') MB)"
[ "$size" -lt 40000000 ] || fail "the image is 40 MB or more"
check "the image is under 40 MB"
user=$(docker image inspect -f '{{.Config.User}}' "$IMAGE")
[ -n "$user" ] && [ "${user%%:*}" != 0 ] && [ "${user%%:*}" != root ] || fail "the image's USER is '$user'"
check "the image's USER is $user"
got=$(docker run --rm "$IMAGE" version)
[ "$got" = "usersync $version" ] || fail "usersync version says '$got', want 'usersync $version'"
check "usersync version: $got"

# wait_ready PORT: until /readyz answers 200 (the database is open).
wait_ready() {
  for _ in $(seq 150); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ] && return 0
    sleep 0.2
  done
  return 1
}
# expect_200 PORT PATH
expect_200() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1$2")
  [ "$code" = 200 ] || fail "$2 answered $code"
  check "$2 200"
}
# not_root CONTAINER: the serving process's uid, from the host (no id or ps in the image).
not_root() {
  local uid
  uid=$(docker top "$1" -eo pid,uid,comm | awk '$3 == "usersync" {print $2; exit}')
  [ -n "$uid" ] && [ "$uid" != 0 ] && [ "$uid" != root ] || fail "$1 runs usersync as uid '$uid'"
  check "$1's process runs as uid $uid"
}
# wait_healthy CONTAINER: the image's HEALTHCHECK (usersync healthcheck), run
# every second here instead of every 10 s.
wait_healthy() {
  local status
  for _ in $(seq 60); do
    status=$(docker inspect -f '{{.State.Health.Status}}' "$1")
    [ "$status" = healthy ] && break
    sleep 1
  done
  [ "$status" = healthy ] || fail "$1's HEALTHCHECK is $status: $(docker inspect -f '{{json .State.Health.Log}}' "$1")"
  check "$1's HEALTHCHECK is healthy"
}
# send CONTAINER WANT ARGS...: webhook send inside the container, signed with
# the secret serve uses there; WANT is the outcome the answer must carry.
send() {
  local c=$1 want=$2 out
  shift 2
  out=$(docker exec "$c" usersync webhook send "$@") || fail "webhook send in $c: $out"
  case "$out" in "200 "*"\"outcome\":\"$want\""*) ;; *) fail "webhook send in $c answered '$out', want $want" ;; esac
  check "webhook send $* in $c: $out"
}
health_flags=(--health-interval 1s --health-start-period 30s)

echo "== docker: run against the CI Postgres ($DB)"
PGOPTIONS='-c client_min_messages=warning' psql -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
  -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
pgurl="postgres://postgres@$PGHOST:$PGPORT/$DB?sslmode=disable"
docker run --rm --network host -e DATABASE_URL="$pgurl" -e LOG_LEVEL=warn "$IMAGE" migrate ||
  fail "usersync migrate as a release step"
check "docker run --rm IMAGE migrate"
docker run -d --name usersync-ci-pg --network host "${health_flags[@]}" \
  -e DATABASE_URL="$pgurl" -e PORT=$PG_PORT -e LOG_LEVEL=warn "$IMAGE" >/dev/null
wait_ready $PG_PORT || {
  docker logs usersync-ci-pg >&2
  fail "usersync on Postgres never answered /readyz 200"
}
expect_200 $PG_PORT /healthz
expect_200 $PG_PORT /readyz
send usersync-ci-pg applied --id msg_ci_docker_pg
got=$(psql -h "$PGHOST" -p "$PGPORT" -U postgres -d "$DB" -tAc \
  "SELECT u.sync_source || ' ' || e.outcome FROM users u JOIN webhook_events e ON e.user_id = u.id
   WHERE u.id = '$SAMPLE_USER' AND e.svix_id = 'msg_ci_docker_pg'")
[ "$got" = "webhook applied" ] || fail "Postgres holds '$got' for the webhook, want 'webhook applied'"
check "psql reads the user and the event back from $DB"
not_root usersync-ci-pg
wait_healthy usersync-ci-pg
docker rm -f usersync-ci-pg >/dev/null

echo "== docker: run on the embedded SQLite, with the volume $VOLUME"
docker volume rm -f $VOLUME >/dev/null
docker volume create $VOLUME >/dev/null
start_lite() {
  docker run -d --name usersync-ci-lite --network host "${health_flags[@]}" \
    -v $VOLUME:/var/lib/usersync -e PORT=$LITE_PORT -e LOG_LEVEL=warn "$IMAGE" >/dev/null
  wait_ready $LITE_PORT || {
    docker logs usersync-ci-lite >&2
    fail "usersync on SQLite never answered /readyz 200"
  }
}
start_lite
expect_200 $LITE_PORT /healthz
expect_200 $LITE_PORT /readyz
send usersync-ci-lite applied --id msg_ci_docker_lite
data=$(docker volume inspect -f '{{.Mountpoint}}' $VOLUME)
got=$(sqlite3 -readonly "$data/usersync.db" \
  "SELECT u.sync_source || ' ' || e.outcome FROM users u JOIN webhook_events e ON e.user_id = u.id
   WHERE u.id = '$SAMPLE_USER' AND e.svix_id = 'msg_ci_docker_lite'")
[ "$got" = "webhook applied" ] || fail "the volume's usersync.db holds '$got' for the webhook, want 'webhook applied'"
check "sqlite3 reads the user and the event back from the volume's usersync.db"
not_root usersync-ci-lite
wait_healthy usersync-ci-lite

echo "== docker: a new container on the same volume keeps the database and the development secret"
secret=$(cat "$data/usersync.webhook-secret")
# An event signed now with the secret the first container made, delivered
# only after that container is gone: Svix's scheme, v1 = HMAC-SHA256 of
# "id.timestamp.body" under the secret's base64 key.
body='{"object":"event","type":"user.deleted","data":{"object":"user","id":"user_ci_docker_restart","deleted":true}}'
ts=$(date +%s)
key=$(printf '%s' "${secret#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
sig=$(printf '%s' "msg_ci_docker_restart.$ts.$body" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64)
docker rm -f usersync-ci-lite >/dev/null
start_lite
[ "$(cat "$data/usersync.webhook-secret")" = "$secret" ] || fail "the development secret changed with the container"
check "usersync.webhook-secret is the same file content"
got=$(curl -s -w ' %{http_code}' -H 'Content-Type: application/json' -H 'svix-id: msg_ci_docker_restart' \
  -H "svix-timestamp: $ts" -H "svix-signature: v1,$sig" --data-raw "$body" "http://127.0.0.1:$LITE_PORT/api/webhooks/clerk" | tr -d '\n')
[ "$got" = '{"outcome":"applied"} 200' ] || fail "an event signed before the new container answered '$got'"
check "an event signed with the first container's secret is applied by the second: $got"
send usersync-ci-lite duplicate --id msg_ci_docker_lite
not_root usersync-ci-lite
docker rm -f usersync-ci-lite >/dev/null
docker volume rm $VOLUME >/dev/null

echo "== docker: compose"
if docker compose version >/dev/null 2>&1; then
  docker compose config -q
  check "docker compose config"
else
  echo "docker compose (v2) is not installed and Debian has no package for it: docker-compose.yml is validated by docker-compose (v1) only"
fi
if command -v docker-compose >/dev/null; then
  docker-compose config -q
  check "docker-compose config"
fi
echo "compose stack not started: its postgres image cannot be pulled offline; the usersync image was run against the CI Postgres instead"

echo "== docker: all checks passed in $(($(date +%s) - started)) s (image $(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1e6}') MB)"
