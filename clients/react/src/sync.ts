// The request side of the hook: one POST to the usersync endpoint, retried
// the way the service asks for. No React here, so it is easy to follow.

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
}

/** A sync that failed for good; status is the HTTP status, 0 for no answer. */
export class UserSyncError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "UserSyncError";
  }
}

export interface SyncRequest {
  endpoint: string;
  userId: string;
  getToken: () => Promise<string | null>;
  fetch: typeof fetch;
  credentials: RequestCredentials;
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  log: (message: string, fields: Record<string, unknown>) => void;
}

// Statuses worth asking again: the service or Clerk is briefly unavailable.
const RETRYABLE = new Set([502, 503, 504]);

/**
 * syncUser POSTs {userId} with the session token. Network errors, 502, 503
 * and 504 are retried with exponential backoff and jitter, 429 after its
 * Retry-After; anything else (401, 403, 410, …) fails at once.
 */
export async function syncUser(req: SyncRequest): Promise<SyncedUser> {
  for (let attempt = 1; ; attempt++) {
    const last = attempt >= req.attempts;
    let res: Response;
    try {
      const token = await req.getToken();
      if (!token) throw new UserSyncError("no session token", 401);
      res = await req.fetch(req.endpoint, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ userId: req.userId }), // never profile data: the service asks Clerk
        credentials: req.credentials,
      });
    } catch (err) {
      if (err instanceof UserSyncError || last) throw asSyncError(err);
      req.log("network error, retrying", { userId: req.userId, attempt });
      await sleep(backoff(req, attempt));
      continue;
    }
    if (res.ok) {
      const body = (await res.json()) as { user: SyncedUser };
      return body.user;
    }
    const retryAfter = res.status === 429 ? retryAfterMs(res) : undefined;
    if (last || (retryAfter === undefined && !RETRYABLE.has(res.status))) {
      throw new UserSyncError(await errorMessage(res), res.status);
    }
    req.log("sync answered " + res.status + ", retrying", { userId: req.userId, attempt });
    await sleep(retryAfter ?? backoff(req, attempt));
  }
}

function backoff(req: SyncRequest, attempt: number): number {
  const ceiling = Math.min(req.maxDelayMs, req.baseDelayMs * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2); // jitter: spread a thundering herd
}

function retryAfterMs(res: Response): number {
  const seconds = Number(res.headers.get("Retry-After"));
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 1000;
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

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
