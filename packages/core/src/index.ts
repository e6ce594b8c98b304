export * from './errors.js';
export * from './clock.js';
export * from './random.js';
export * from './digest.js';
export * from './store.js';
export { MemoryStore, PURGE_GRACE_MS } from './memory-store.js';
