// Every workflow (runbook) Lifeline registers; workers load this file via workflowsPath.
export { smokeWorkflow } from './smoke';
export type { SmokeInput, SmokeResult } from './smoke';
