import { act, renderHook, waitFor } from "@testing-library/react";
import { StrictMode, type ReactNode } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { resetUserSync, useUserSync, type AuthState, type SyncStatus, type UseUserSyncOptions } from "../src";

// What Clerk's useAuth() returns; tests set who is signed in. No Clerk
// package is imported or mocked: the hook takes this object from the caller.
const clerk = {
  userId: null as string | null,
  isLoaded: true,
  getToken: async () => "tok_session" as string | null,
};
const auth = (): AuthState => ({
  isLoaded: clerk.isLoaded,
  isSignedIn: clerk.isLoaded ? clerk.userId !== null : undefined,
  userId: clerk.isLoaded ? clerk.userId : undefined,
  getToken: clerk.getToken,
});

const record = (id: string) => ({
  id,
  email: `${id}@example.com`,
  firstName: "Ada",
  lastName: null,
  imageUrl: null,
  username: null,
  phoneNumber: null,
  tier: "PRO",
  createdAt: "2026-11-27T10:00:00Z",
  updatedAt: "2026-11-27T10:00:00Z",
  organizations: [{ id: "org_1", name: "Acme", slug: "acme", role: "org:admin", tier: "PRO" }],
});

function reply(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
}

const ok = (id: string) => reply(200, { success: true, outcome: "created", user: record(id) });

function signIn(id: string) {
  clerk.userId = id;
}

let fetchMock: ReturnType<typeof vi.fn>;
const fast: UseUserSyncOptions = { baseDelayMs: 1, maxDelayMs: 2 };

beforeEach(() => {
  resetUserSync();
  clerk.isLoaded = true;
  clerk.getToken = async () => "tok_session";
  signIn("user_1");
  fetchMock = vi.fn(async () => ok(clerk.userId!));
  vi.stubGlobal("fetch", fetchMock);
});

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe("useUserSync", () => {
  it("sends the bearer token and only {userId}", async () => {
    const { result } = renderHook(() => useUserSync(auth(), { endpoint: "https://users.example.com/api/user/sync" }));
    await waitFor(() => expect(result.current.syncStatus).toBe("synced"));
    expect(fetchMock).toHaveBeenCalledTimes(1);
    const [url, init] = fetchMock.mock.calls[0] as [string, RequestInit];
    expect(url).toBe("https://users.example.com/api/user/sync");
    expect(init.method).toBe("POST");
    expect((init.headers as Record<string, string>).Authorization).toBe("Bearer tok_session");
    expect(JSON.parse(init.body as string)).toEqual({ userId: "user_1" });
    expect(result.current.syncedUser).toEqual(record("user_1"));
  });

  it("makes one request across re-renders, strict-mode double effects and remounts", async () => {
    const wrapper = ({ children }: { children: ReactNode }) => <StrictMode>{children}</StrictMode>;
    const first = renderHook(() => useUserSync(auth()), { wrapper });
    const second = renderHook(() => useUserSync(auth()), { wrapper });
    await waitFor(() => expect(first.result.current.syncStatus).toBe("synced"));
    first.rerender();
    second.rerender();
    first.unmount();
    const third = renderHook(() => useUserSync(auth()), { wrapper });
    expect(third.result.current.syncStatus).toBe("synced");
    expect(third.result.current.syncedUser).toEqual(record("user_1"));
    expect(fetchMock).toHaveBeenCalledTimes(1);
  });

  it("does not sync again after a reload of the tab", async () => {
    const { result } = renderHook(() => useUserSync(auth()));
    await waitFor(() => expect(result.current.syncStatus).toBe("synced"));
    vi.resetModules(); // a reload: module state is gone, sessionStorage is not
    const reloaded = await import("../src");
    const again = renderHook(() => reloaded.useUserSync(auth()));
    expect(again.result.current.syncStatus).toBe("synced");
    expect(fetchMock).toHaveBeenCalledTimes(1);
  });

  it("syncs again when a different user signs in", async () => {
    const { result, rerender } = renderHook(() => useUserSync(auth()));
    await waitFor(() => expect(result.current.syncStatus).toBe("synced"));
    signIn("user_2");
    rerender();
    await waitFor(() => expect(result.current.syncedUser?.id).toBe("user_2"));
    expect(fetchMock).toHaveBeenCalledTimes(2);
    expect(JSON.parse((fetchMock.mock.calls[1] as [string, RequestInit])[1].body as string)).toEqual({ userId: "user_2" });
  });

  it("stays idle until Clerk is loaded and signed in", async () => {
    clerk.isLoaded = false;
    const { result, rerender } = renderHook(() => useUserSync(auth()));
    expect(result.current.syncStatus).toBe("idle");
    clerk.isLoaded = true;
    clerk.userId = null;
    rerender();
    expect(result.current.syncStatus).toBe("idle");
    expect(fetchMock).not.toHaveBeenCalled();
  });

  it("retries 503 and network errors, then succeeds", async () => {
    fetchMock.mockResolvedValueOnce(reply(503, { error: "database unavailable, retry later" }));
    fetchMock.mockRejectedValueOnce(new TypeError("Failed to fetch"));
    const { result } = renderHook(() => useUserSync(auth(), fast));
    await waitFor(() => expect(result.current.syncStatus).toBe("synced"));
    expect(fetchMock).toHaveBeenCalledTimes(3);
  });

  it("gives up after the attempts and reports the error without throwing", async () => {
    fetchMock.mockImplementation(async () => reply(502, { error: "Clerk Backend API unavailable, retry later" }));
    const onError = vi.fn();
    const { result } = renderHook(() => useUserSync(auth(), { ...fast, attempts: 3, onError }));
    await waitFor(() => expect(result.current.syncStatus).toBe("error"));
    expect(fetchMock).toHaveBeenCalledTimes(3);
    expect(result.current.syncError?.status).toBe(502);
    expect(onError).toHaveBeenCalledWith(expect.objectContaining({ status: 502, message: "Clerk Backend API unavailable, retry later" }));
  });

  it("honours Retry-After on 429", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: false });
    fetchMock.mockResolvedValueOnce(reply(429, { error: "too many" }, { "Retry-After": "2" }));
    const { result } = renderHook(() => useUserSync(auth(), fast));
    await act(async () => {
      await vi.advanceTimersByTimeAsync(1999);
    });
    expect(fetchMock).toHaveBeenCalledTimes(1);
    await act(async () => {
      await vi.advanceTimersByTimeAsync(1);
    });
    expect(fetchMock).toHaveBeenCalledTimes(2);
    await act(async () => {
      await vi.runAllTimersAsync();
    });
    expect(result.current.syncStatus).toBe("synced");
  });

  it.each([401, 403, 410])("does not retry %i", async (status) => {
    fetchMock.mockResolvedValue(reply(status, { error: "no" }));
    const onError = vi.fn();
    const { result } = renderHook(() => useUserSync(auth(), { ...fast, onError }));
    await waitFor(() => expect(result.current.syncStatus).toBe("error"));
    expect(fetchMock).toHaveBeenCalledTimes(1);
    expect(onError).toHaveBeenCalledTimes(1);
    expect(result.current.syncError?.status).toBe(status);
  });

  it("moves idle → syncing → synced", async () => {
    let release!: (r: Response) => void;
    fetchMock.mockImplementationOnce(() => new Promise<Response>((resolve) => (release = resolve)));
    clerk.isLoaded = false;
    const seen: SyncStatus[] = [];
    const { result, rerender } = renderHook(() => {
      const r = useUserSync(auth());
      if (seen.at(-1) !== r.syncStatus) seen.push(r.syncStatus);
      return r;
    });
    clerk.isLoaded = true;
    rerender();
    await waitFor(() => expect(result.current.syncStatus).toBe("syncing"));
    await act(async () => release(ok("user_1")));
    await waitFor(() => expect(result.current.syncStatus).toBe("synced"));
    expect(seen).toEqual(["idle", "syncing", "synced"]);
  });

  it("logs ids only, never the email", async () => {
    const spies = (["log", "debug", "info", "warn", "error"] as const).map((m) => vi.spyOn(console, m).mockImplementation(() => {}));
    fetchMock.mockResolvedValueOnce(reply(503, {}));
    const { result } = renderHook(() => useUserSync(auth(), { ...fast, debug: true }));
    await waitFor(() => expect(result.current.syncStatus).toBe("synced"));
    const logged = JSON.stringify(spies.flatMap((s) => s.mock.calls));
    expect(logged).toContain("user_1");
    expect(logged).not.toContain("@example.com");
    expect(logged).not.toContain("Ada");
    expect(logged).not.toContain("tok_session");
    expect(spies.find((s) => s === spies[0])!.mock.calls).toHaveLength(0); // nothing on console.log
  });

  it("fails without a session token and never sends the request", async () => {
    clerk.getToken = async () => null;
    const { result } = renderHook(() => useUserSync(auth(), fast));
    await waitFor(() => expect(result.current.syncStatus).toBe("error"));
    expect(result.current.syncError?.status).toBe(401);
    expect(fetchMock).not.toHaveBeenCalled();
  });

  it.each([403, 410])("remembers %i for the session: no request after a reload, onError again", async (status) => {
    fetchMock.mockResolvedValue(reply(status, { error: "user was deleted in Clerk" }));
    const { result } = renderHook(() => useUserSync(auth(), fast));
    await waitFor(() => expect(result.current.syncStatus).toBe("error"));
    vi.resetModules(); // a reload
    const reloaded = await import("../src");
    const onError = vi.fn();
    const again = renderHook(() => reloaded.useUserSync(auth(), { ...fast, onError }));
    expect(again.result.current.syncStatus).toBe("error");
    expect(again.result.current.syncError?.status).toBe(status);
    expect(again.result.current.syncError?.message).toBe("user was deleted in Clerk");
    await waitFor(() => expect(onError).toHaveBeenCalledWith(expect.objectContaining({ status })));
    expect(fetchMock).toHaveBeenCalledTimes(1);
  });

  it("asks again after a 401 on the next mount (a fresh token may do)", async () => {
    fetchMock.mockResolvedValueOnce(reply(401, { error: "invalid or missing session token" }));
    const first = renderHook(() => useUserSync(auth(), fast));
    await waitFor(() => expect(first.result.current.syncStatus).toBe("error"));
    first.unmount();
    const second = renderHook(() => useUserSync(auth(), fast));
    await waitFor(() => expect(second.result.current.syncStatus).toBe("synced"));
    expect(fetchMock).toHaveBeenCalledTimes(2);
  });

  it("goes back to idle on sign-out and answers for the new user at once", async () => {
    const { result, rerender } = renderHook(() => useUserSync(auth()));
    await waitFor(() => expect(result.current.syncStatus).toBe("synced"));
    clerk.userId = null;
    rerender();
    expect(result.current.syncStatus).toBe("idle");
    expect(result.current.syncedUser).toBeNull();
  });
});
