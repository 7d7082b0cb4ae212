// Type-level proof that useAuth() from each Clerk React package fits the
// hook's AuthState, so callers pass it as is. Types only: nothing is run.
import type { useAuth as useAuthClerkReact5 } from "@clerk/clerk-react";
import type { useAuth as useAuthReact6 } from "@clerk/react";
import { describe, expectTypeOf, it } from "vitest";

import type { AuthState } from "../src";

describe("AuthState", () => {
  it("accepts useAuth() of @clerk/react 6 (what @clerk/nextjs 7 re-exports)", () => {
    expectTypeOf<ReturnType<typeof useAuthReact6>>().toExtend<AuthState>();
  });
  it("accepts useAuth() of @clerk/clerk-react 5 (older apps)", () => {
    expectTypeOf<ReturnType<typeof useAuthClerkReact5>>().toExtend<AuthState>();
  });
});
