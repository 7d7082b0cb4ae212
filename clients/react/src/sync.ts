// The framework-free core: one POST to the usersync endpoint per user per
// browser session, retried the way the service asks for. No React and no
// Clerk package here, so Vue, Svelte or plain JS apps can call syncUser()
// with their own getToken.

/** The user record usersync answers with (the row in your users table). */
export interface SyncedUser {
  id: string;
  email: string | null;
  firstName: string | null;
  lastName: string | null;
  imageUrl: string | null;
  username: string | null;
  phoneNumber: string | null;
  tier: string;
  createdAt: string;
  updatedAt: string;
  /** The organizations the user is a member of (live only), in the order they joined. */
  organizations: SyncedOrganization[];
}

/** One organization of a synced user: the organizations row joined with the user's membership. */
export interface SyncedOrganization {
  id: string;
  name: string | null;
  slug: string | null;
  /** The user's role in it, e.g. "org:admin". */
  role: string;
  /** The organization's tier: FREE, PRO or MAXX. */
  tier: string;
}

/** A sync that failed for good; status is the HTTP status, 0 for no answer (network error, CORS). */
export class UserSyncError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "UserSyncError";
  }
}

/** Options of syncUser (and, less userId and getToken, of useUserSync). */
export interface SyncOptions {
  /** The usersync endpoint, same-origin or absolute. Default "/api/user/sync". */
  endpoint?: string;
  /** Tries in all for network errors, 502, 503, 504 and 429. Default 3. */
  attempts?: number;
  /** First backoff in ms, doubled each retry, with jitter. Default 500. */
  baseDelayMs?: number;
  /** Longest backoff in ms. Default 8000. */
  maxDelayMs?: number;
  /** A 429 whose Retry-After is longer than this (ms) is not waited for: it fails. Default 60000. */
  maxRetryAfterMs?: number;
  /** fetch's credentials: "include" sends the __session cookie cross-origin. Default "same-origin". */
  credentials?: RequestCredentials;
  /** Log progress with user ids only (never emails, names or tokens) to console.debug. */
  debug?: boolean;
  /** The fetch to use. Default globalThis.fetch. */
  fetch?: typeof fetch;
}

export interface SyncUserOptions extends SyncOptions {
  /** The signed-in user's id (Clerk's userId). */
  userId: string;
  /** Returns the session token, e.g. Clerk's getToken from useAuth() or Clerk.session.getToken. */
  getToken: () => Promise<string | null | undefined>;
}

/** What is known about a user's sync in this browser session, without asking the server. */
export type KnownSync = { status: "synced"; user: SyncedUser | null } | { status: "error"; error: UserSyncError };

// Statuses worth asking again: the service or Clerk is briefly unavailable.
const RETRYABLE = new Set([502, 503, 504]);
// Answers that will not change within the session: remembered, never asked again.
// 403: the body names another user than the token (a bug); 410: the user was deleted.
const TERMINAL = new Set([403, 410]);

// One sync per user id per browser tab: inflight joins concurrent callers
// (React strict mode runs every effect twice) to one request; known keeps
// the outcome for this page load; sessionStorage remembers it across reloads.
const inflight = new Map<string, Promise<SyncedUser | null>>();
const known = new Map<string, KnownSync>();
const PREFIX = "usersync:";
const syncedKey = (userId: string) => `${PREFIX}synced:${userId}`;
const failedKey = (userId: string) => `${PREFIX}failed:${userId}`;

/**
 * syncUser POSTs {userId} with the session token to the usersync endpoint,
 * at most once per user per browser session (sessionStorage). It resolves
 * with the synced row, or null when this tab's session had already synced
 * the user (after a reload). Network errors, 502, 503 and 504 are retried
 * with exponential backoff and jitter, 429 after its Retry-After; 401 fails
 * at once; 403 and 410 fail at once and are remembered for the session, so
 * later calls reject with the same error without a request.
 */
export function syncUser(options: SyncUserOptions): Promise<SyncedUser | null> {
  const { userId } = options;
  const prior = knownSync(userId);
  if (prior?.status === "synced") return Promise.resolve(prior.user);
  if (prior?.status === "error") return Promise.reject(prior.error);
  const running = inflight.get(userId);
  if (running) return running;

  const log = logger(options.debug);
  log("syncing", { userId });
  const request = post(options, log)
    .then((user) => {
      known.set(userId, { status: "synced", user });
      store(syncedKey(userId), "1");
      log("synced", { userId });
      return user as SyncedUser | null;
    })
    .catch((err: unknown) => {
      const error = asSyncError(err);
      if (TERMINAL.has(error.status)) {
        known.set(userId, { status: "error", error });
        store(failedKey(userId), JSON.stringify({ status: error.status, message: error.message }));
      }
      log("sync failed", { userId, status: error.status });
      throw error;
    })
    .finally(() => inflight.delete(userId));
  inflight.set(userId, request);
  return request;
}

/** knownSync tells what this tab's session already knows of the user's sync, or null when a request is needed. */
export function knownSync(userId: string): KnownSync | null {
  const mem = known.get(userId);
  if (mem) return mem;
  if (load(syncedKey(userId)) === "1") return { status: "synced", user: null };
  const failed = load(failedKey(userId));
  if (failed) {
    try {
      const { status, message } = JSON.parse(failed) as { status: number; message: string };
      if (TERMINAL.has(status)) return { status: "error", error: new UserSyncError(String(message), status) };
    } catch {
      // not ours: ask again
    }
  }
  return null;
}

/** resetUserSync forgets every sync in this tab (call it on sign-out, or between tests). */
export function resetUserSync(): void {
  inflight.clear();
  known.clear();
  try {
    const storage = globalThis.sessionStorage;
    for (let i = storage.length - 1; i >= 0; i--) {
      const key = storage.key(i);
      if (key?.startsWith(PREFIX)) storage.removeItem(key);
    }
  } catch {
    // no storage
  }
}

type Log = (message: string, fields: Record<string, unknown>) => void;

async function post(options: SyncUserOptions, log: Log): Promise<SyncedUser> {
  const { userId } = options;
  const endpoint = options.endpoint ?? "/api/user/sync";
  const attempts = Math.max(1, options.attempts ?? 3);
  const maxRetryAfterMs = options.maxRetryAfterMs ?? 60_000;
  const doFetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
  for (let attempt = 1; ; attempt++) {
    const last = attempt >= attempts;
    let res: Response;
    try {
      const token = await options.getToken();
      if (!token) throw new UserSyncError("no session token", 401);
      res = await doFetch(endpoint, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ userId }), // never profile data: the service asks Clerk
        credentials: options.credentials ?? "same-origin",
      });
    } catch (err) {
      if (err instanceof UserSyncError || last) throw asSyncError(err);
      log("network error, retrying", { userId, attempt });
      await sleep(backoff(options, attempt));
      continue;
    }
    if (res.ok) {
      const body = (await res.json()) as { user: SyncedUser };
      return body.user;
    }
    let wait: number | undefined;
    if (res.status === 429) {
      // Retry-After is readable cross-origin only when the service exposes it
      // (Access-Control-Expose-Headers); without it, back off as for a 503.
      wait = retryAfterMs(res) ?? Math.max(1000, backoff(options, attempt));
      if (wait > maxRetryAfterMs) wait = undefined;
    } else if (RETRYABLE.has(res.status)) {
      wait = backoff(options, attempt);
    }
    if (last || wait === undefined) throw new UserSyncError(await errorMessage(res), res.status);
    log("sync answered " + res.status + ", retrying", { userId, attempt, waitMs: Math.round(wait) });
    await sleep(wait);
  }
}

function backoff(options: SyncOptions, attempt: number): number {
  const ceiling = Math.min(options.maxDelayMs ?? 8000, (options.baseDelayMs ?? 500) * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2); // jitter: spread a thundering herd
}

/** Retry-After in ms: delay-seconds or an HTTP date; undefined when absent or unreadable. */
function retryAfterMs(res: Response): number | undefined {
  const value = res.headers.get("Retry-After")?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

async function errorMessage(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { error?: string };
    return body.error ?? `sync failed with ${res.status}`;
  } catch {
    return `sync failed with ${res.status}`;
  }
}

function asSyncError(err: unknown): UserSyncError {
  if (err instanceof UserSyncError) return err;
  return new UserSyncError(err instanceof Error ? err.message : "network error", 0);
}

function logger(debug: boolean | undefined): Log {
  return (message, fields) => {
    if (debug) console.debug(`[usersync] ${message}`, fields);
  };
}

function load(key: string): string | null {
  try {
    return globalThis.sessionStorage?.getItem(key) ?? null;
  } catch {
    return null; // storage disabled: the in-memory record still limits it to once per page load
  }
}

function store(key: string, value: string): void {
  try {
    globalThis.sessionStorage?.setItem(key, value);
  } catch {
    // storage full or disabled: nothing to do
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
