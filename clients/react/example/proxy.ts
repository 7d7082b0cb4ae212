// Clerk's request handling (Next.js 16 calls middleware "proxy").
import { clerkMiddleware } from "@clerk/nextjs/server";

export default clerkMiddleware();

// Clerk's matcher, less /api/user/sync: that route is rewritten to usersync
// (next.config.mjs), which verifies the session itself. Run on it,
// clerkMiddleware answers a development instance's request without the dev
// browser cookie with a rewrite to itself, and Next.js then fails to proxy it
// (500, "socket hang up"); CI's end-to-end test caught this.
export const config = {
  matcher: [
    // Skip Next.js internals, static files and the usersync route
    "/((?!_next|api/user/sync|[^?]*\\.(?:html?|css|js(?!on)|jpe?g|webp|png|gif|svg|ttf|woff2?|ico|csv|docx?|xlsx?|zip|webmanifest)).*)",
    "/(api(?!/user/sync)|trpc)(.*)",
  ],
};
