export * from './schema';
export * from './load';
export * from './errors';
export * from './secrets';
export * from './storage';
export { LIFELINE_ROOT, resolveFromRoot } from './root';
