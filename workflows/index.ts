// Every workflow (runbook) Lifeline registers; workers load this file via workflowsPath.
export { smokeWorkflow } from './smoke';
export type { SmokeInput, SmokeResult } from './smoke';
export { verifyWorkflow } from './verify';
export type { VerifyInput, VerifyResult, VerifyProblem } from './verify';
export { retentionWorkflow, collectGarbageWorkflow } from './retention';
export type { RetentionInput, RetentionResult } from './retention';
