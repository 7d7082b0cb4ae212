// @vitest-environment node
/// <reference types="node" />
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { isSyncRoute } from "../example/sync-route";

// The example's proxy skips clerkMiddleware for exactly /api/user/sync: no
// path that merely starts with it, and no other case of it.
describe("example proxy: the route left to usersync", () => {
  it("is /api/user/sync", () => {
    expect(isSyncRoute("/api/user/sync")).toBe(true);
  });
  it.each(["/api/user/sync-admin", "/api/user/syncs", "/API/USER/SYNC", "/api/user/sync/x", "/api/user/syn", "/api/user", "/"])(
    "is not %s",
    (path) => {
      expect(isSyncRoute(path)).toBe(false);
    },
  );
});

// The matcher decides where the proxy runs at all. Next.js anchors each
// entry and compares without regard to case, as this does; every route,
// the sync route's look-alikes included, must reach the proxy.
describe("example proxy: matcher", () => {
  const source = readFileSync(fileURLToPath(new URL("../example/proxy.ts", import.meta.url)), "utf8");
  const block = source.slice(source.indexOf("matcher:"), source.indexOf("],", source.indexOf("matcher:")));
  const matchers = [...block.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => new RegExp(`^${JSON.parse(`"${m[1]}"`)}$`, "i"));

  it("has entries", () => {
    expect(matchers.length).toBeGreaterThan(0);
  });
  it.each(["/api/user/sync", "/api/user/sync-admin", "/api/user/syncs", "/API/USER/SYNC", "/api/other", "/dashboard"])(
    "runs the proxy on %s",
    (path) => {
      expect(matchers.some((re) => re.test(path))).toBe(true);
    },
  );
  it.each(["/_next/static/chunk.js", "/logo.png"])("skips %s", (path) => {
    expect(matchers.some((re) => re.test(path))).toBe(false);
  });
});
