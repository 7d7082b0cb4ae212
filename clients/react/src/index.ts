export { syncUser, knownSync, resetUserSync, UserSyncError } from "./sync.js";
export type { KnownSync, SyncedOrganization, SyncedUser, SyncOptions, SyncUserOptions } from "./sync.js";
export { useUserSync } from "./useUserSync.js";
export type { AuthState, SyncStatus, UseUserSyncOptions, UseUserSyncResult } from "./useUserSync.js";
