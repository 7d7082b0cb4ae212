// End-to-end: headless Chromium loads a page that uses this package (built
// dist/, bundled with esbuild) from one origin and syncs against the real Go
// service on another origin. The service verifies RS256 session tokens this
// test mints with its own key (CLERK_JWT_KEY), fetches profiles from the
// fake Clerk Backend API of clerkapi/clerktest (e2e/fakeclerk), and writes to
// a fresh Postgres database. Needs: go, psql and a Postgres server
// (E2E_PG_URL, default postgres://postgres@127.0.0.1:5432), Debian's
// chromium (CHROMIUM, default /usr/bin/chromium). Screenshots and the
// service log of a failing test go to e2e/artifacts/.
//
//   npm run build && npm run e2e
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createSign, generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";
import puppeteer from "puppeteer-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(here, "..");
const repo = path.resolve(pkg, "../..");
const artifacts = path.join(here, "artifacts");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const PG_URL = (process.env.E2E_PG_URL ?? "postgres://postgres@127.0.0.1:5432").replace(/\/+$/, "");
const DB = "usersync_react_e2e";
const RETRY_AFTER_S = 3; // SYNC_RATE_LIMIT=1/3s: one sync per user, refilled over 3 s

const USERS = { ada: "user_e2e_ada", eve: "user_e2e_eve", rate: "user_e2e_rate", gone: "user_e2e_gone", next: "user_e2e_next" };
// The Next.js example, built by .ci/react.sh with USERSYNC_URL naming this port (Next.js fixes rewrites at
// build time), is served with next start and forwards /api/user/sync to the service listening there.
const NEXT_APP = process.env.E2E_NEXT_APP;
const NEXT_USERSYNC_PORT = process.env.E2E_NEXT_USERSYNC_PORT;
const NEXT_PUBLISHABLE_KEY = process.env.E2E_NEXT_PUBLISHABLE_KEY;

const tmp = mkdtempSync(path.join(tmpdir(), "usersync-react-e2e-"));
const children = [];
const servers = [];
let browser;
let serviceURL, endpoint, pageOrigin, foreignOrigin;
let serviceLog = "";
const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });

// ---- helpers ---------------------------------------------------------------

const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

/** An RS256 Clerk-shaped session token for sub, authorized for azp. */
function mint(sub, azp) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url({ alg: "RS256", typ: "JWT", kid: "ins_e2e" });
  const body = b64url({ sub, azp, iss: "https://clerk.usersync.test", sid: `sess_${sub}`, iat: now, nbf: now - 5, exp: now + 600, v: 2 });
  const sig = createSign("RSA-SHA256").update(`${head}.${body}`).sign(privateKey).toString("base64url");
  return `${head}.${body}.${sig}`;
}

function psql(sql, db = DB) {
  return execFileSync("psql", [`${PG_URL}/${db}`, "-v", "ON_ERROR_STOP=1", "-qtA", "-c", sql], {
    encoding: "utf8",
    env: { ...process.env, PGOPTIONS: "--client-min-messages=warning" },
  }).trim();
}

function timed(label, fn) {
  const t0 = performance.now();
  const out = fn();
  console.log(`# ${label}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return out;
}

function listen(handler) {
  return new Promise((resolve) => {
    const srv = createServer(handler);
    srv.listen(0, "127.0.0.1", () => {
      servers.push(srv);
      resolve(`http://127.0.0.1:${srv.address().port}`);
    });
  });
}

async function freePort() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

function start(name, cmd, args, env, { cwd = tmp } = {}) {
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  child.stderr.on("data", (d) => (serviceLog += `[${name}] ${d}`));
  child.on("exit", (code, signal) => (serviceLog += `[${name}] exited ${code ?? signal}\n`));
  return child;
}

async function waitFor(what, check, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${serviceLog.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The service's request log lines for the sync route (LOG_FORMAT=json). */
function syncRequests() {
  return serviceLog
    .split("\n")
    .filter((l) => l.includes('"msg":"request"'))
    .map((l) => JSON.parse(l.slice(l.indexOf("{"))))
    .filter((r) => r.route === "/api/user/sync");
}

/**
 * Opens the e2e page on origin as user (with a token for azp) in a fresh
 * browser context, and records the sync requests the browser makes.
 */
async function openPage(name, origin, user, { azp = pageOrigin, attempts } = {}) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  const seen = [];
  const t0 = Date.now();
  page.on("request", (r) => {
    if (r.url() === endpoint) seen.push({ kind: "request", method: r.method(), t: Date.now() - t0 });
  });
  page.on("response", (r) => {
    if (r.url() === endpoint) seen.push({ kind: "response", method: r.request().method(), status: r.status(), headers: r.headers(), t: Date.now() - t0 });
  });
  page.on("requestfailed", (r) => {
    if (r.url() === endpoint) seen.push({ kind: "failed", method: r.method(), error: r.failure()?.errorText, t: Date.now() - t0 });
  });
  page.on("console", (m) => (serviceLog += `[page ${name}] ${m.type()}: ${m.text()}\n`));
  const q = new URLSearchParams({ user, token: mint(user, azp), endpoint });
  if (attempts) q.set("attempts", String(attempts));
  const settled = () =>
    page.waitForFunction(() => ["synced", "error"].includes(window.__usersync?.syncStatus), { timeout: 20_000 }).then(() =>
      page.evaluate(() => window.__usersync),
    );
  await page.goto(`${origin}/?${q}`);
  return {
    page,
    seen,
    posts: () => seen.filter((e) => e.kind === "request" && e.method === "POST"),
    answers: () => seen.filter((e) => e.kind === "response" && e.method === "POST"),
    settled,
    async reload() {
      seen.length = 0;
      await page.reload();
      const state = await settled();
      await new Promise((r) => setTimeout(r, 500)); // room for a request that should not come
      return state;
    },
    close: () => context.close(),
  };
}

/** Runs a test body; on failure saves a screenshot and the logs to e2e/artifacts/. */
function e2e(name, body, options = {}) {
  test(name, options, async () => {
    const opened = [];
    const open = async (...args) => {
      const p = await openPage(name, ...args);
      opened.push(p);
      return p;
    };
    try {
      await body(open);
    } catch (err) {
      mkdirSync(artifacts, { recursive: true });
      const slug = name.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
      for (const [i, p] of opened.entries()) {
        await p.page.screenshot({ path: path.join(artifacts, `${slug}-${i}.png`) }).catch(() => {});
        writeFileSync(path.join(artifacts, `${slug}-${i}.requests.json`), JSON.stringify(p.seen, null, 2));
      }
      writeFileSync(path.join(artifacts, `${slug}.log`), serviceLog);
      throw err;
    } finally {
      for (const p of opened) await p.close().catch(() => {});
    }
  });
}

// ---- setup -------------------------------------------------------------------

before(async () => {
  assert.ok(existsSync(path.join(pkg, "dist/index.js")), "dist/ is missing: run npm run build first");
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium)`);

  // The page: index.html plus the package bundled with React.
  const www = path.join(tmp, "www");
  mkdirSync(www);
  writeFileSync(path.join(www, "index.html"), readFileSync(path.join(here, "page/index.html")));
  await build({
    entryPoints: [path.join(here, "page/main.jsx")],
    outfile: path.join(www, "main.js"),
    bundle: true,
    format: "esm",
    jsx: "automatic",
    define: { "process.env.NODE_ENV": '"production"' },
    nodePaths: [path.join(pkg, "node_modules")],
    logLevel: "warning",
  });
  const serve = (req, res) => {
    const file = new URL(req.url, "http://x").pathname === "/main.js" ? "main.js" : "index.html";
    res.writeHead(200, { "Content-Type": file.endsWith(".js") ? "text/javascript" : "text/html", "Cache-Control": "no-store" });
    res.end(readFileSync(path.join(www, file)));
  };
  pageOrigin = await listen(serve);
  foreignOrigin = await listen(serve); // same page, an origin the service does not allow

  // The Go side: the service and the fake Clerk Backend API.
  timed("go build (usersync, fakeclerk)", () =>
    execFileSync("go", ["build", "-o", tmp, "./cmd/usersync", "./clients/react/e2e/fakeclerk"], { cwd: repo, stdio: "inherit" }),
  );
  const fake = start("fakeclerk", path.join(tmp, "fakeclerk"), ["-users", [USERS.ada, USERS.eve, USERS.rate, USERS.next].join(",")]);
  const clerkURL = await new Promise((resolve, reject) => {
    fake.stdout.once("data", (d) => resolve(String(d).trim()));
    fake.once("exit", () => reject(new Error(`fakeclerk exited\n${serviceLog}`)));
  });

  psql(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`, "postgres");
  psql(`CREATE DATABASE ${DB}`, "postgres");

  const port = NEXT_APP ? Number(NEXT_USERSYNC_PORT) : await freePort();
  serviceURL = `http://127.0.0.1:${port}`;
  endpoint = `${serviceURL}/api/user/sync`;
  const svc = start("usersync", path.join(tmp, "usersync"), [], {
    PORT: String(port),
    DATABASE_URL: `${PG_URL}/${DB}?sslmode=disable`,
    CLERK_SECRET_KEY: "sk_test_usersync_fake",
    CLERK_API_URL: clerkURL,
    CLERK_JWT_KEY: publicKey.export({ type: "spki", format: "pem" }),
    CLERK_AUTHORIZED_PARTIES: pageOrigin,
    CORS_ALLOWED_ORIGINS: pageOrigin,
    CLERK_WEBHOOK_SIGNING_SECRET: `whsec_${randomBytes(24).toString("base64")}`,
    SYNC_RATE_LIMIT: `1/${RETRY_AFTER_S}s`,
    SYNC_RECONCILE_INTERVAL: "0", // these tests are of the login-time sync: reconcile would import the fake's users first
    LOG_FORMAT: "json",
    LOG_LEVEL: "info",
  });
  svc.stdout.on("data", (d) => (serviceLog += d));
  await waitFor("usersync /readyz", async () => (await fetch(`${serviceURL}/readyz`)).ok);

  const userDataDir = path.join(tmp, "chromium-profile");
  const t0 = performance.now();
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  console.log(`# chromium launch: ${((performance.now() - t0) / 1000).toFixed(1)} s (${await browser.version()})`);
});

after(async () => {
  await browser?.close().catch(() => {});
  for (const c of children) c.kill("SIGTERM");
  for (const s of servers) s.close();
  await new Promise((r) => setTimeout(r, 300));
  try {
    psql(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`, "postgres");
  } catch {
    // leave it for the next run's DROP
  }
  rmSync(tmp, { recursive: true, force: true });
});

// ---- the cases the issue lists -------------------------------------------------

e2e("first load syncs once and writes the row; a reload does not sync again", async (open) => {
  const p = await open(pageOrigin, USERS.ada);
  const state = await p.settled();
  assert.equal(state.syncStatus, "synced", JSON.stringify(state));
  assert.equal(state.syncedUser.id, USERS.ada);
  assert.equal(state.syncedUser.email, `${USERS.ada}@example.com`);
  assert.deepEqual(
    p.seen.filter((e) => e.kind === "request").map((e) => e.method).sort(),
    ["OPTIONS", "POST"],
    "one preflight and one POST",
  );
  assert.deepEqual(
    p.answers().map((a) => a.status),
    [200],
  );
  const cors = p.answers()[0].headers;
  assert.equal(cors["access-control-allow-origin"], pageOrigin);
  assert.match(cors["access-control-expose-headers"] ?? "", /Retry-After/i);

  // The row, read from the database, not from the answer.
  assert.equal(psql(`SELECT email || '|' || sync_source FROM users WHERE id = '${USERS.ada}' AND deleted_at IS NULL`), `${USERS.ada}@example.com|login`);
  const server = syncRequests().filter((r) => r.user_id === USERS.ada);
  assert.deepEqual(
    server.map((r) => `${r.method} ${r.status}`),
    ["POST 200"],
  );

  const again = await p.reload();
  assert.equal(again.syncStatus, "synced");
  assert.equal(again.syncedUser, null, "after a reload the row is not re-fetched");
  assert.equal(p.posts().length, 0, "no POST after a reload");
  assert.equal(syncRequests().filter((r) => r.user_id === USERS.ada).length, 1, "the service saw one sync");
});

e2e("a page on a foreign origin is blocked by the browser: no POST reaches the service", async (open) => {
  const before = syncRequests().filter((r) => r.method === "POST").length;
  const p = await open(foreignOrigin, USERS.eve, { attempts: 2 }); // a valid token: only CORS stands in the way
  const state = await p.settled();
  assert.equal(state.syncStatus, "error", JSON.stringify(state));
  assert.equal(state.syncError.status, 0, "fetch rejects: the browser withholds the answer");
  assert.equal(syncRequests().filter((r) => r.method === "POST").length, before, "the service saw no POST");
  assert.ok(
    syncRequests().some((r) => r.method === "OPTIONS"),
    "the service saw the preflight",
  );
  assert.equal(psql(`SELECT count(*) FROM users WHERE id = '${USERS.eve}'`), "0");
});

e2e("a 429 waits the server's Retry-After, then syncs", async (open) => {
  // Use up this user's one sync, as another tab would have.
  const first = await fetch(endpoint, { method: "POST", headers: { Authorization: `Bearer ${mint(USERS.rate, pageOrigin)}` } });
  assert.equal(first.status, 200);

  const p = await open(pageOrigin, USERS.rate);
  const state = await p.settled();
  assert.equal(state.syncStatus, "synced", JSON.stringify(state));
  const answers = p.answers();
  assert.deepEqual(
    answers.map((a) => a.status),
    [429, 200],
  );
  assert.equal(answers[0].headers["retry-after"], String(RETRY_AFTER_S));
  const posts = p.posts();
  const waited = posts[1].t - answers[0].t;
  console.log(`# 429 → retry after ${waited} ms (Retry-After: ${RETRY_AFTER_S} s)`);
  // Times are when the DevTools events reach this process, so allow some slack;
  // without the exposed header the page would retry after 1 s.
  assert.ok(waited >= RETRY_AFTER_S * 1000 - 500, `retried after ${waited} ms, before Retry-After`);
  assert.ok(waited < RETRY_AFTER_S * 1000 + 2500, `retried after ${waited} ms, long after Retry-After`);
});

e2e("a 410 is not retried, and not asked again after a reload", async (open) => {
  const p = await open(pageOrigin, USERS.gone);
  const state = await p.settled();
  assert.equal(state.syncStatus, "error", JSON.stringify(state));
  assert.equal(state.syncError.status, 410);
  await new Promise((r) => setTimeout(r, 1500)); // longer than any backoff would wait
  assert.equal(p.posts().length, 1, "one POST, no retry");
  assert.deepEqual(
    p.answers().map((a) => a.status),
    [410],
  );

  const again = await p.reload();
  assert.equal(again.syncStatus, "error");
  assert.equal(again.syncError.status, 410);
  assert.equal(p.posts().length, 0, "remembered for the session");
  assert.equal(syncRequests().filter((r) => r.user_id === USERS.gone).length, 1);
  assert.equal(psql(`SELECT count(*) FROM users WHERE id = '${USERS.gone}'`), "0");
});

// ---- the Next.js example ----------------------------------------------------------

// Not a browser test: Clerk's frontend (clerk-js, from Clerk's servers) cannot
// load here. It checks the part of the recommended adoption that is ours: the
// example's rewrite carries the token to usersync and its answers (status,
// JSON body, Retry-After) back unchanged, with the example's proxy.ts loaded
// (Clerk's matcher running clerkMiddleware on that route made every sync a
// 500). Run by .ci/react.sh after it builds the example; in CI it never skips.
e2e(
  "the Next.js example (next start) forwards /api/user/sync to usersync and its answers back",
  async () => {
    assert.ok(NEXT_APP && NEXT_USERSYNC_PORT && NEXT_PUBLISHABLE_KEY, "E2E_NEXT_APP, E2E_NEXT_USERSYNC_PORT and E2E_NEXT_PUBLISHABLE_KEY must be set in CI");
    const port = await freePort();
    const next = `http://127.0.0.1:${port}`;
    const nextBin = path.join(NEXT_APP, "node_modules/next/dist/bin/next");
    const child = start("next", process.execPath, [nextBin, "start", "-p", String(port), "-H", "127.0.0.1"], {
      NEXT_TELEMETRY_DISABLED: "1",
      NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY: NEXT_PUBLISHABLE_KEY,
      CLERK_SECRET_KEY: "sk_test_usersync_fake",
    }, { cwd: NEXT_APP });
    child.stdout.on("data", (d) => (serviceLog += `[next] ${d}`));
    try {
      await waitFor("next start", async () => (await fetch(`${next}/robots.txt`), true)); // any answer: it listens
      const anonymous = await fetch(`${next}/api/user/sync`, { method: "POST" });
      const anonymousBody = await anonymous.text();
      assert.equal(anonymous.status, 401, `through Next.js: ${anonymousBody}`);
      assert.equal(typeof JSON.parse(anonymousBody).error, "string");

      const sync = () => fetch(`${next}/api/user/sync`, { method: "POST", headers: { Authorization: `Bearer ${mint(USERS.next, pageOrigin)}` } });
      const ok = await sync();
      const body = await ok.json();
      assert.equal(ok.status, 200, JSON.stringify(body));
      assert.equal(body.user.id, USERS.next);
      assert.equal(body.user.email, `${USERS.next}@example.com`);
      assert.equal(psql(`SELECT email || '|' || sync_source FROM users WHERE id = '${USERS.next}' AND deleted_at IS NULL`), `${USERS.next}@example.com|login`);

      // The per-user limit (one sync per 3 s): the 429 and its Retry-After come back through Next.js.
      const limited = await sync();
      assert.equal(limited.status, 429);
      assert.equal(limited.headers.get("retry-after"), String(RETRY_AFTER_S));
      assert.match(limited.headers.get("content-type") ?? "", /application\/json/);

      // The service saw the syncs themselves, not something Next.js made up.
      assert.deepEqual(
        syncRequests().filter((r) => r.user_id === USERS.next).map((r) => r.status),
        [200, 429],
      );
    } finally {
      child.kill("SIGTERM");
    }
  },
  { skip: !NEXT_APP && !process.env.CI && "E2E_NEXT_APP is not set: .ci/react.sh builds the example and sets it" },
);
