// The framework-free core, as a Vue, Svelte or plain JS app would call it.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { knownSync, resetUserSync, syncUser, UserSyncError, type SyncUserOptions } from "../src";

const user = (id: string) => ({ id, email: null, firstName: null, lastName: null, imageUrl: null, username: null, phoneNumber: null, tier: "FREE", createdAt: "", updatedAt: "", organizations: [] });
const reply = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });

let fetchMock: ReturnType<typeof vi.fn<typeof fetch>>;
const opts = (over: Partial<SyncUserOptions> = {}): SyncUserOptions => ({
  userId: "user_1",
  getToken: async () => "tok",
  fetch: fetchMock,
  baseDelayMs: 1,
  maxDelayMs: 2,
  ...over,
});

beforeEach(() => {
  resetUserSync();
  fetchMock = vi.fn<typeof fetch>(async () => reply(200, { success: true, outcome: "created", user: user("user_1") }));
});
afterEach(() => vi.useRealTimers());

describe("syncUser", () => {
  it("posts once per session: concurrent calls share the request, later calls and reloads make none", async () => {
    const [a, b] = await Promise.all([syncUser(opts()), syncUser(opts())]);
    expect(a).toEqual(user("user_1"));
    expect(b).toBe(a);
    expect(await syncUser(opts())).toBe(a);
    expect(fetchMock).toHaveBeenCalledTimes(1);
    expect(sessionStorage.getItem("usersync:synced:user_1")).toBe("1");

    vi.resetModules(); // a reload
    const reloaded = await import("../src");
    expect(reloaded.knownSync("user_1")).toEqual({ status: "synced", user: null });
    expect(await reloaded.syncUser(opts())).toBeNull();
    expect(fetchMock).toHaveBeenCalledTimes(1);
  });

  it("uses globalThis.fetch and /api/user/sync by default", async () => {
    vi.stubGlobal("fetch", fetchMock);
    try {
      await syncUser({ userId: "user_1", getToken: async () => "tok" });
    } finally {
      vi.unstubAllGlobals();
    }
    expect(fetchMock.mock.calls[0]![0]).toBe("/api/user/sync");
    expect(fetchMock.mock.calls[0]![1]!.credentials).toBe("same-origin");
  });

  it("waits Retry-After given as an HTTP date", async () => {
    vi.useFakeTimers({ now: new Date("2026-01-01T00:00:00Z") });
    fetchMock.mockResolvedValueOnce(reply(429, { error: "too many" }, { "Retry-After": "Thu, 01 Jan 2026 00:00:03 GMT" }));
    const done = syncUser(opts());
    await vi.advanceTimersByTimeAsync(2999);
    expect(fetchMock).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(fetchMock).toHaveBeenCalledTimes(2);
    await expect(done).resolves.toEqual(user("user_1"));
  });

  it("backs off at least a second on a 429 whose Retry-After it cannot read (not exposed by CORS)", async () => {
    vi.useFakeTimers();
    fetchMock.mockResolvedValueOnce(reply(429, { error: "too many" }));
    const done = syncUser(opts());
    await vi.advanceTimersByTimeAsync(999);
    expect(fetchMock).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(fetchMock).toHaveBeenCalledTimes(2);
    await expect(done).resolves.toBeTruthy();
  });

  it("fails a 429 whose Retry-After is longer than maxRetryAfterMs, and asks again on the next call", async () => {
    fetchMock.mockResolvedValueOnce(reply(429, { error: "too many" }, { "Retry-After": "120" }));
    await expect(syncUser(opts())).rejects.toMatchObject({ status: 429 });
    expect(fetchMock).toHaveBeenCalledTimes(1);
    expect(knownSync("user_1")).toBeNull();
    await expect(syncUser(opts())).resolves.toBeTruthy();
  });

  it("rejects with a UserSyncError of status 0 when there is no answer", async () => {
    fetchMock.mockRejectedValue(new TypeError("Failed to fetch"));
    const err = await syncUser(opts({ attempts: 2 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserSyncError);
    expect((err as UserSyncError).status).toBe(0);
    expect(fetchMock).toHaveBeenCalledTimes(2);
  });

  it("remembers 410 and rejects later calls without a request", async () => {
    fetchMock.mockResolvedValue(reply(410, { error: "user was deleted in Clerk" }));
    await expect(syncUser(opts())).rejects.toMatchObject({ status: 410 });
    await expect(syncUser(opts())).rejects.toMatchObject({ status: 410, message: "user was deleted in Clerk" });
    expect(fetchMock).toHaveBeenCalledTimes(1);
    resetUserSync();
    expect(knownSync("user_1")).toBeNull();
  });
});
