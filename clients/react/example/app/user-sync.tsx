"use client";

// The whole adoption: hand Clerk's useAuth() to useUserSync. @usersync/react
// imports no Clerk package, so it reads the same Clerk context as your app.
import { useAuth } from "@clerk/nextjs";
import { useUserSync } from "@usersync/react";

export function UserSync() {
  const { syncStatus, syncedUser, syncError } = useUserSync(useAuth(), {
    // endpoint defaults to "/api/user/sync", rewritten to usersync in next.config.mjs
    onError: (error) => {
      if (error.status === 410) console.warn("usersync: this user was deleted; sign them out");
    },
  });
  if (syncStatus === "idle") return null;
  return (
    <p data-sync-status={syncStatus}>
      {syncStatus === "synced" && (syncedUser ? `Synced: plan ${syncedUser.tier}` : "Synced earlier in this session")}
      {syncStatus === "syncing" && "Setting up your account…"}
      {syncStatus === "error" && `Could not sync (${syncError?.status}): ${syncError?.message}`}
    </p>
  );
}
