// Same-origin adoption: the browser calls /api/user/sync on this app, and
// Next.js forwards it to the usersync service, so no CORS is involved and the
// __session cookie travels too. USERSYNC_URL is read by `next build`: Next.js
// fixes rewrites at build time, and `next start` does not read it again.
const usersync = process.env.USERSYNC_URL ?? "http://localhost:8080";

/** @type {import("next").NextConfig} */
const nextConfig = {
  async rewrites() {
    return [{ source: "/api/user/sync", destination: `${usersync}/api/user/sync` }];
  },
};

export default nextConfig;
