export { runConformance, selectScenarios, checkOptions, OptionsError } from './runner.js';
export { SCENARIOS, automatedChecklist } from './registry.js';
export { formatTable, formatResultLine, toJUnit } from './report.js';
export { validateMessage, checkExamples, examplesDir, type MessageValidation, type ExampleOutcome } from './validate.js';
export { traceabilityMarkdown } from './traceability.js';
export { parseExpectedFailures, parseApiMap } from './config.js';
export { MockUpstream, UPSTREAM_PROVIDER_ID, UPSTREAM_SCOPES } from './upstream.js';
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
