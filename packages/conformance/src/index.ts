export { runConformance, selectScenarios, checkOptions, OptionsError } from './runner.js';
export { SCENARIOS, automatedChecklist } from './registry.js';
export { formatTable, formatResultLine, toJUnit } from './report.js';
export { validateMessage, checkExamples, examplesDir, type MessageValidation, type ExampleOutcome } from './validate.js';
export { traceabilityMarkdown } from './traceability.js';
export { parseExpectedFailures, parseApiMap } from './config.js';
export {
  MockUpstream,
  gatewayConfigFragment,
  upstreamP2Entry,
  upstreamProviderEntry,
  UPSTREAM_AUTO_APPROVE,
  UPSTREAM_CLIENT_ID,
  UPSTREAM_DENY,
  UPSTREAM_OPEN_PROVIDER_ID,
  UPSTREAM_P2_PROVIDER_ID,
  UPSTREAM_PROVIDER_ID,
  UPSTREAM_SCOPES,
  UPSTREAM_SECRET_ENV,
  type MockUpstreamOptions,
} from './upstream.js';
export { SUITE_VERSION } from './version.js';
export type {
  ApiMap,
  ConformanceOptions,
  ExpectedFailure,
  Mode,
  NativeLogin,
  Profile,
  Report,
  ResultStatus,
  Scenario,
  ScenarioResult,
} from './types.js';
