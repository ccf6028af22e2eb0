/**
 * ApplicationFailure types of backup and restore activities (no imports:
 * workflow code branches on them, activities throw them).
 */
export const FailureTypes = {
  /** the asset changed while it was backed up: scan again and back up again */
  AssetChanged: 'AssetChanged',
  /** the backup's lease lapsed (or packs it reuses were collected): start the backup over */
  RestartBackup: 'RestartBackup',
  /** the node has no scan for this backup (work folder lost, other machine): scan again */
  ScanLost: 'ScanLost',
  AssetPathMissing: 'AssetPathMissing',
  Unreadable: 'Unreadable',
  CheckpointNotReady: 'CheckpointNotReady',
  InvalidInput: 'InvalidInput',
  Integrity: 'IntegrityError',
  KeyMismatch: 'KeyMismatch',
  RepositoryState: 'RepositoryState',
  StoragePermanent: 'StoragePermanent',
  /** the store refused these credentials (least privilege: e.g. one tenant's restore user asked for another tenant's objects) */
  StorageAccessDenied: 'StorageAccessDenied',
  StorageUnavailable: 'StorageUnavailable',
  Config: 'ConfigError',
  DiskFull: 'DiskFull',
  TargetNotEmpty: 'TargetNotEmpty',
  RestoreIncomplete: 'RestoreIncomplete',
  NotAvailable: 'NotAvailable',
  Transient: 'Transient',
  /** a restore for one tenant asked for another tenant's asset or snapshot: refused (and audited) */
  TenantMismatch: 'TenantMismatch',
} as const;

/** Failure types after which a backup starts over (new scan, new lease) instead of failing. */
export const RESTART_BACKUP_TYPES: readonly string[] = [FailureTypes.AssetChanged, FailureTypes.RestartBackup, FailureTypes.ScanLost];
