// Clerk's request handling (Next.js 16 calls middleware "proxy").
import { clerkMiddleware } from "@clerk/nextjs/server";
import type { NextFetchEvent, NextRequest } from "next/server";

import { isSyncRoute } from "./sync-route";

const clerk = clerkMiddleware();

// Every route but exactly /api/user/sync: that one is rewritten to usersync
// (next.config.mjs), which verifies the session itself. Run on it,
// clerkMiddleware answers a development instance's request without the dev
// browser cookie with a rewrite to itself, and Next.js then fails to proxy it
// (500, "socket hang up"); CI's end-to-end test caught this. The exclusion is
// an exact comparison here, not a pattern in the matcher (see sync-route.ts).
export default function proxy(req: NextRequest, event: NextFetchEvent) {
  if (isSyncRoute(req.nextUrl.pathname)) {
    return; // on to the rewrite
  }
  return clerk(req, event);
}

// Clerk's matcher.
export const config = {
  matcher: [
    // Skip Next.js internals and static files
    "/((?!_next|[^?]*\\.(?:html?|css|js(?!on)|jpe?g|webp|png|gif|svg|ttf|woff2?|ico|csv|docx?|xlsx?|zip|webmanifest)).*)",
    "/(api|trpc)(.*)",
  ],
};
