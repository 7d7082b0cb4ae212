import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.{ts,tsx}"], // e2e/ runs under node --test (npm run e2e), example/ is a Next.js app
    environment: "happy-dom",
    globals: true,
    restoreMocks: true,
  },
});
