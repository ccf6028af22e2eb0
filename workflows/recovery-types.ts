/** Failure types of node-provider and training-job activities (no imports: workflow code branches on them). */
export const RecoveryFailureTypes = {
  /** the node's root holds data this rebuild did not create */
  NodeNotEmpty: 'NodeNotEmpty',
  /** node, provider or training job config does not allow the operation */
  Config: 'ConfigError',
  /** a program could not be started (not found, not executable) */
  StartFailed: 'StartFailed',
  /** the training job ended (done, stopped, failed) before reaching the expected step */
  JobExited: 'JobExited',
  /** the training job runs but did not pass the expected step in time */
  JobNotAdvancing: 'JobNotAdvancing',
} as const;
