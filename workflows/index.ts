// Every workflow (runbook) Lifeline registers; workers load this file via workflowsPath.
export { smokeWorkflow } from './smoke';
export type { SmokeInput, SmokeResult } from './smoke';
export { backupWorkflow } from './backup';
export type { BackupWorkflowInput, BackupWorkflowResult, BackupTuning } from './backup';
export { restoreWorkflow } from './restore';
export type { RestoreWorkflowInput, RestoreWorkflowResult, RestoreFrom } from './restore';
export { checkpointBackupWorkflow } from './checkpoint';
export type { CheckpointCoordinatorInput, CheckpointCoordinatorResult, CheckpointSignal } from './checkpoint';
export { verifyWorkflow } from './verify';
export type { VerifyInput, VerifyResult, VerifyProblem } from './verify';
export { retentionWorkflow, collectGarbageWorkflow } from './retention';
export type { RetentionInput, RetentionResult } from './retention';
export { incidentWorkflow } from './incident';
export type { IncidentInput, IncidentView } from './incident';
export { nodeHealthWorkflow } from './node-health';
export type { NodeHealthInput, NodeHealthView } from './node-health';
export { recoverNodeWorkflow } from './recover-node';
export type { RecoverNodeInput, RecoverNodeResult, RecoverNodeProgress } from './recover-node';
