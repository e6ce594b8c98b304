export {
  runDemo,
  AGENT_NAME,
  DEVELOPER,
  PURPOSE,
  SCOPES,
  type DemoOptions,
  type DemoResult,
  type DemoStep,
} from './demo.js';
export {
  approveInChromium,
  CHROMIUM_FLAGS,
  CHROMIUM_PATH,
  type ApproveOptions,
  type BrowserUser,
  type ConsentSeen,
} from './browser.js';
export {
  formatCall,
  maskHeaders,
  maskJson,
  maskSecret,
  shortenJwt,
  shortUrl,
  tracingFetch,
  type TracedCall,
} from './trace.js';
