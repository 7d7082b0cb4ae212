import { useAuth, useUser } from "@clerk/clerk-react";
import { useEffect, useRef, useState } from "react";

import { syncUser, UserSyncError, type SyncedUser } from "./sync";

export { UserSyncError, type SyncedUser };

export type SyncStatus = "idle" | "syncing" | "synced" | "error";

export interface UseUserSyncOptions {
  /** The usersync endpoint, same-origin or not. Default "/api/user/sync". */
  endpoint?: string;
  /** Tries in all for network errors, 502, 503, 504 and 429. Default 3. */
  attempts?: number;
  /** First backoff in ms, doubled each retry, with jitter. Default 500. */
  baseDelayMs?: number;
  /** Longest backoff in ms. Default 8000. */
  maxDelayMs?: number;
  /** fetch's credentials: "include" sends the __session cookie cross-origin. Default "same-origin". */
  credentials?: RequestCredentials;
  /** Called once a sync fails for good. The hook itself never throws. */
  onError?: (error: UserSyncError) => void;
  /** Called with the synced record. */
  onSynced?: (user: SyncedUser) => void;
  /** Log progress with user ids only (never emails or names) to console.debug. */
  debug?: boolean;
}

export type UseUserSyncResult = ReturnType<typeof useUser> & {
  syncStatus: SyncStatus;
  /** The row usersync answered with; null until synced (and after a reload, when the sync happened earlier). */
  syncedUser: SyncedUser | null;
  syncError: UserSyncError | null;
};

// One sync per user id per browser tab. inflight joins concurrent mounts
// (React strict mode runs every effect twice) to one request; synced keeps
// the answer across remounts; sessionStorage remembers it across reloads.
const inflight = new Map<string, Promise<SyncedUser>>();
const synced = new Map<string, SyncedUser>();
const storageKey = (userId: string) => `usersync:synced:${userId}`;

/**
 * useUserSync is Clerk's useUser() plus the login-time sync: once the user
 * is loaded and signed in, it POSTs {userId} with the session token to the
 * usersync endpoint, at most once per user per browser session.
 */
export function useUserSync(options: UseUserSyncOptions = {}): UseUserSyncResult {
  const clerk = useUser();
  const { getToken } = useAuth();
  const userId = clerk.isLoaded && clerk.isSignedIn ? clerk.user?.id : undefined;
  const [state, setState] = useState<{ status: SyncStatus; user: SyncedUser | null; error: UserSyncError | null }>({
    status: "idle",
    user: null,
    error: null,
  });
  const latest = useRef({ options, getToken });
  latest.current = { options, getToken };

  useEffect(() => {
    if (!userId) {
      setState({ status: "idle", user: null, error: null });
      return;
    }
    if (synced.has(userId) || storedAsSynced(userId)) {
      setState({ status: "synced", user: synced.get(userId) ?? null, error: null });
      return;
    }
    let active = true;
    setState({ status: "syncing", user: null, error: null });
    const { options: opts } = latest.current;
    (inflight.get(userId) ?? start(userId, latest.current)).then(
      (user) => {
        if (!active) return;
        setState({ status: "synced", user, error: null });
        opts.onSynced?.(user);
      },
      (err: UserSyncError) => {
        if (!active) return;
        setState({ status: "error", user: null, error: err });
        opts.onError?.(err);
      },
    );
    return () => {
      active = false;
    };
  }, [userId]);

  return { ...clerk, syncStatus: state.status, syncedUser: state.user, syncError: state.error } as UseUserSyncResult;
}

function start(
  userId: string,
  { options, getToken }: { options: UseUserSyncOptions; getToken: () => Promise<string | null> },
): Promise<SyncedUser> {
  const log = (message: string, fields: Record<string, unknown>) => {
    if (options.debug) console.debug(`[usersync] ${message}`, fields);
  };
  log("syncing", { userId });
  const request = syncUser({
    endpoint: options.endpoint ?? "/api/user/sync",
    userId,
    getToken: () => getToken(),
    fetch: (input, init) => fetch(input, init),
    credentials: options.credentials ?? "same-origin",
    attempts: options.attempts ?? 3,
    baseDelayMs: options.baseDelayMs ?? 500,
    maxDelayMs: options.maxDelayMs ?? 8000,
    log,
  })
    .then((user) => {
      synced.set(userId, user);
      storeAsSynced(userId);
      log("synced", { userId });
      return user;
    })
    .catch((err: UserSyncError) => {
      log("sync failed", { userId, status: err.status });
      throw err;
    })
    .finally(() => inflight.delete(userId));
  inflight.set(userId, request);
  return request;
}

function storedAsSynced(userId: string): boolean {
  try {
    return globalThis.sessionStorage?.getItem(storageKey(userId)) === "1";
  } catch {
    return false; // storage disabled: the in-memory record still limits it to once per page load
  }
}

function storeAsSynced(userId: string): void {
  try {
    globalThis.sessionStorage?.setItem(storageKey(userId), "1");
  } catch {
    // storage full or disabled: nothing to do
  }
}

/** resetUserSync forgets every sync in this tab (call it on sign-out, or between tests). */
export function resetUserSync(): void {
  inflight.clear();
  synced.clear();
  try {
    const storage = globalThis.sessionStorage;
    for (let i = storage.length - 1; i >= 0; i--) {
      const key = storage.key(i);
      if (key?.startsWith("usersync:synced:")) storage.removeItem(key);
    }
  } catch {
    // no storage
  }
}
