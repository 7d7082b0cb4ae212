// Same-origin adoption: the browser calls /api/user/sync on this app, and
// Next.js forwards it to the usersync service, so no CORS is involved and the
// __session cookie travels too.
const usersync = process.env.USERSYNC_URL ?? "http://localhost:8080";

/** @type {import("next").NextConfig} */
const nextConfig = {
  async rewrites() {
    return [{ source: "/api/user/sync", destination: `${usersync}/api/user/sync` }];
  },
};

export default nextConfig;
