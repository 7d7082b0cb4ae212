export { useUserSync, resetUserSync, UserSyncError } from "./useUserSync";
export type { SyncStatus, SyncedUser, UseUserSyncOptions, UseUserSyncResult } from "./useUserSync";
