export * from './config.js';
export * from './canonical-path.js';
export * from './scope-map.js';
export * from './oauth-bridge.js';
export * from './proxy.js';
export { redactUrlCredentials } from './secret.js';
