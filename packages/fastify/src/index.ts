export { athFastify, athFastify as default, MAX_JSON_DEPTH, type AthRouteConfig } from './plugin.js';
export { AthFastifyOptionsError, type AthFastifyOptions, type AuthenticateUser } from './options.js';
export { CONSENT_PATH } from './pages.js';
export { HSTS } from './http.js';
