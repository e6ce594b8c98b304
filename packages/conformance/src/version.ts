/** Kept in step with package.json by test/traceability.test.ts. */
export const SUITE_VERSION = '0.1.0';
