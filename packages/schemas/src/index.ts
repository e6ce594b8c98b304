export * from './generated/types.js';
export * from './generated/validators.js';
export * from './generated/endpoints.js';
export { SchemaValidationError, type ValidationResult, type Validator, type Violation } from './validator.js';
