// @athkit/testkit: test support shared by the athkit packages. Private: import it from test files
// only (a devDependency), never from src/.
export {
  installNetworkGuard,
  isLoopbackAddress,
  useNetworkGuard,
  type NetworkGuard,
} from './network-guard.js';
export {
  APP_ID,
  SHOP_SCOPES,
  loopbackFetcher,
  startTestServer,
  type ConsentOptions,
  type TestServer,
  type TestServerOptions,
} from './ath-server.js';
export {
  readmeExample,
  runReadmeExample,
  type ReadmeExampleOptions,
  type ReadmeExampleResult,
} from './readme.js';
export { freePort } from './net.js';
export { CHROMIUM_ARGS, CHROMIUM_PATH, browserTestsEnabled, launchChromium } from './chromium.js';
