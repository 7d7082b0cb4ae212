// The one path the proxy leaves to usersync. Compared as a whole string,
// case and all: Next.js matchers compare without regard to case and a
// lookahead in them is a prefix, so an exclusion written in the matcher would
// also leave /api/user/sync-admin, /api/user/syncs and /API/USER/SYNC
// without clerkMiddleware, and an app copying it would leave them unprotected.
export const SYNC_ROUTE = "/api/user/sync";

export function isSyncRoute(pathname: string): boolean {
  return pathname === SYNC_ROUTE;
}
