#!/usr/bin/env bash
# CI for clients/react (@usersync/react):
#   1. unit tests (type-check, Vitest) after npm ci, which builds dist/ (prepare)
#   2. npm pack, install the tarball beside @clerk/nextjs@latest in a scratch
#      project, import it in plain Node, and check no @clerk/clerk-react is there
#   3. next build of the Next.js App Router example (clients/react/example)
#   4. the end-to-end test: headless Debian chromium against the real service,
#      and the example served by next start, forwarding syncs to that service
# Installs what is missing (Debian's chromium; npm packages; starts Postgres).
# With CI=true anything still missing fails the run; it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PKG=$ROOT/clients/react
export NEXT_TELEMETRY_DISABLED=1 npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

missing() {
  echo "react.sh: $*" >&2
  exit 1
}

timings=()
step() { # step NAME COMMAND...: run it and remember how long it took
  local name=$1 t0=$SECONDS
  shift
  echo "== clients/react: $name"
  "$@"
  timings+=("$(printf '%-44s %4ss' "$name" $((SECONDS - t0)))")
}

# ---- tools ------------------------------------------------------------------
command -v go >/dev/null || missing "go is not installed"
command -v node >/dev/null && command -v npm >/dev/null || missing "node and npm are not installed (Node 20.9+ is needed by Next.js 16)"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=9)?0:1)' ||
  missing "Node $(node --version) is too old: Next.js 16 needs 20.9+"
CHROMIUM=/usr/bin/chromium
if [ ! -x "$CHROMIUM" ]; then
  echo "installing Debian's chromium"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null ||
    missing "apt-get install chromium failed"
fi
[ -x "$CHROMIUM" ] || missing "$CHROMIUM is missing"
command -v psql >/dev/null || missing "psql is not installed"
PGHOST=127.0.0.1 PGPORT=5432
if ! pg_isready -h "$PGHOST" -p "$PGPORT" -q; then
  echo "Postgres is not answering; starting the local cluster"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 30); do pg_isready -h "$PGHOST" -p "$PGPORT" -q && break; sleep 1; done
fi
pg_isready -h "$PGHOST" -p "$PGPORT" -q || missing "Postgres is not answering on $PGHOST:$PGPORT"

SCRATCH=$(mktemp -d /tmp/usersync-react-ci.XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT

# ---- 1. unit tests ------------------------------------------------------------
unit() {
  cd "$PKG"
  npm ci
  [ -f dist/index.js ] || missing "npm ci did not build dist/ (prepare)"
  npm test
}
step "npm ci (builds dist) + unit tests" unit

# ---- 2. pack, install beside @clerk/nextjs@latest, import in Node ----------------
TARBALL=
pack_install_import() {
  cd "$PKG"
  rm -f usersync-react-*.tgz
  TARBALL=$PKG/$(npm pack --silent | tail -1)
  [ -f "$TARBALL" ] || missing "npm pack made no tarball"
  tar -tzf "$TARBALL" | sort
  cd "$SCRATCH" && mkdir app && cd app
  npm init -y >/dev/null
  npm install @clerk/nextjs@latest "$TARBALL"
  npm ls @clerk/nextjs @clerk/react @usersync/react
  node --input-type=module -e '
    const m = await import("@usersync/react");
    const core = await import("@usersync/react/core");
    for (const name of ["useUserSync", "syncUser", "resetUserSync", "knownSync", "UserSyncError"]) {
      if (!(name in m)) throw new Error("@usersync/react does not export " + name);
    }
    if ("useUserSync" in core) throw new Error("@usersync/react/core must not need React");
    // The core in plain Node: one POST, then none for the same user.
    let calls = 0;
    const fetch = async () => (calls++, new Response(JSON.stringify({ user: { id: "user_1" } }), { status: 200 }));
    const opts = { userId: "user_1", getToken: async () => "tok", endpoint: "http://usersync.invalid/api/user/sync", fetch };
    const user = await core.syncUser(opts);
    await core.syncUser(opts);
    if (user.id !== "user_1" || calls !== 1) throw new Error("syncUser: " + JSON.stringify({ user, calls }));
    console.log("imported @usersync/react and @usersync/react/core in Node " + process.version);
  '
  no_clerk_react
}
no_clerk_react() { # the deprecated package must not be anywhere in the tree
  local found
  found=$(npm ls @clerk/clerk-react --all --parseable 2>/dev/null || true)
  if [ -n "$found" ]; then
    npm ls @clerk/clerk-react --all || true
    missing "@clerk/clerk-react is in the dependency tree of $(pwd)"
  fi
  echo "npm ls @clerk/clerk-react: empty"
}
step "npm pack + install beside @clerk/nextjs@latest" pack_install_import

# ---- 3. the Next.js example -------------------------------------------------------
next_example() {
  cd "$PKG/example"
  local want
  want=$(node -p 'require("./package.json").dependencies["@usersync/react"]')
  [ "$want" = "file:../$(basename "$TARBALL")" ] || missing "example/package.json wants $want, npm pack made $(basename "$TARBALL")"
  rm -rf node_modules .next
  npm install
  no_clerk_react
  # Next.js fixes rewrites at build time, so the port the e2e test's usersync
  # will listen on is chosen now and built into the example's rewrite.
  NEXT_USERSYNC_PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  USERSYNC_URL="http://127.0.0.1:$NEXT_USERSYNC_PORT" NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY="$NEXT_PUBLISHABLE_KEY" npx next build
}
# A test publishable key: pk_test_ + base64("<frontend API host>$"). Nothing is fetched at build time.
NEXT_PUBLISHABLE_KEY="pk_test_$(printf 'usersync-example.clerk.accounts.dev$' | base64 -w0)"
NEXT_USERSYNC_PORT=
step "Next.js example: npm install + next build" next_example

# ---- 4. the browser end-to-end test ------------------------------------------------
e2e() {
  cd "$PKG"
  rm -rf e2e/artifacts
  CHROMIUM=$CHROMIUM E2E_PG_URL="postgres://postgres@$PGHOST:$PGPORT" E2E_NEXT_APP="$PKG/example" \
    E2E_NEXT_USERSYNC_PORT="$NEXT_USERSYNC_PORT" E2E_NEXT_PUBLISHABLE_KEY="$NEXT_PUBLISHABLE_KEY" npm run e2e ||
    { echo "e2e failed: screenshots and logs in clients/react/e2e/artifacts/" >&2; ls -l e2e/artifacts >&2 || true; return 1; }
}
step "Chromium end-to-end test" e2e

echo "== clients/react: durations"
printf '  %s\n' "${timings[@]}"
