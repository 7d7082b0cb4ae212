import { useEffect, useRef, useState } from "react";

import { knownSync, syncUser, type SyncedUser, type SyncOptions, type UserSyncError } from "./sync.js";

export type SyncStatus = "idle" | "syncing" | "synced" | "error";

/**
 * The part of Clerk's useAuth() result the hook reads. Pass useAuth() itself,
 * from whichever Clerk package your app uses: @clerk/nextjs, @clerk/react,
 * @clerk/clerk-react, @clerk/react-router, … This package imports none of
 * them, so it never brings a second copy of Clerk (or a deprecated one) into
 * your app, and never reads another package's React context.
 */
export interface AuthState {
  isLoaded: boolean;
  isSignedIn?: boolean | null;
  userId?: string | null;
  getToken: () => Promise<string | null | undefined>;
}

export interface UseUserSyncOptions extends SyncOptions {
  /**
   * Called when the sync fails for good, and on mount when a 403 or 410 is
   * remembered from earlier in the session. The hook itself never throws.
   */
  onError?: (error: UserSyncError) => void;
  /** Called with the synced record (not after a reload: the sync happened earlier). */
  onSynced?: (user: SyncedUser) => void;
}

export interface UseUserSyncResult {
  syncStatus: SyncStatus;
  /** The row usersync answered with; null until synced, and after a reload (the sync happened earlier). */
  syncedUser: SyncedUser | null;
  syncError: UserSyncError | null;
}

type State = UseUserSyncResult & { userId: string | null };

const idle: State = { userId: null, syncStatus: "idle", syncedUser: null, syncError: null };

function stateFor(userId: string | null): State {
  if (!userId) return idle;
  const prior = knownSync(userId);
  if (prior?.status === "synced") return { userId, syncStatus: "synced", syncedUser: prior.user, syncError: null };
  if (prior?.status === "error") return { userId, syncStatus: "error", syncedUser: null, syncError: prior.error };
  return { userId, syncStatus: "syncing", syncedUser: null, syncError: null };
}

/**
 * useUserSync makes the login-time sync: once Clerk has loaded and the user
 * is signed in, it POSTs {userId} with the session token to the usersync
 * endpoint, at most once per user per browser session (see syncUser).
 *
 *   const { syncStatus, syncedUser } = useUserSync(useAuth(), { endpoint });
 */
export function useUserSync(auth: AuthState, options: UseUserSyncOptions = {}): UseUserSyncResult {
  const userId = auth.isLoaded && auth.isSignedIn && auth.userId ? auth.userId : null;
  const [state, setState] = useState<State>(() => stateFor(userId));
  // The latest getToken and options, without restarting the effect when the
  // caller passes new objects on every render.
  const latest = useRef({ getToken: auth.getToken, options });
  latest.current = { getToken: auth.getToken, options };

  useEffect(() => {
    const next = stateFor(userId);
    setState((s) => (sameState(s, next) ? s : next));
    const { options: opts } = latest.current;
    if (next.syncError) opts.onError?.(next.syncError); // a 403 or 410 remembered from earlier in the session
    if (!userId || next.syncStatus !== "syncing") return;
    let active = true;
    syncUser({ ...opts, userId, getToken: () => latest.current.getToken() }).then(
      (user) => {
        if (!active) return;
        setState({ userId, syncStatus: "synced", syncedUser: user, syncError: null });
        if (user) opts.onSynced?.(user);
      },
      (error: UserSyncError) => {
        if (!active) return;
        setState({ userId, syncStatus: "error", syncedUser: null, syncError: error });
        opts.onError?.(error);
      },
    );
    return () => {
      active = false;
    };
  }, [userId]);

  // Before the effect has run for a new user, answer for that user already.
  const current = state.userId === userId ? state : stateFor(userId);
  return { syncStatus: current.syncStatus, syncedUser: current.syncedUser, syncError: current.syncError };
}

function sameState(a: State, b: State): boolean {
  return a.userId === b.userId && a.syncStatus === b.syncStatus && a.syncedUser === b.syncedUser && a.syncError === b.syncError;
}
