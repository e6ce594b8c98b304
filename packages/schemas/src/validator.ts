import type { ErrorObject, ValidateFunction } from 'ajv';

/** One schema violation: where (JSON pointer into the value), what rule, and a readable message. */
export interface Violation {
  /** JSON pointer to the offending value, '' for the root. */
  readonly pointer: string;
  /** The JSON Schema keyword that failed (required, type, pattern, ...). */
  readonly keyword: string;
  readonly message: string;
  readonly params: Readonly<Record<string, unknown>>;
}

export type ValidationResult<T> =
  | { readonly valid: true; readonly value: T; readonly violations: readonly [] }
  | { readonly valid: false; readonly violations: readonly Violation[] };

/** Thrown by assert<Def>: lists every violation with its JSON pointer. */
export class SchemaValidationError extends Error {
  override readonly name = 'SchemaValidationError';
  constructor(
    readonly def: string,
    readonly violations: readonly Violation[],
  ) {
    super(`value is not a valid ${def}:\n${violations.map((v) => `  ${v.pointer || '(root)'}: ${v.message}`).join('\n')}`);
  }
}

export interface Validator<T> {
  /** The $def this validator checks. */
  readonly def: string;
  /** Type guard without allocation of a result object (hot paths). */
  is(value: unknown): value is T;
  /** Full result with every violation. */
  (value: unknown): ValidationResult<T>;
  /** Throws SchemaValidationError unless the value is valid. */
  assert(value: unknown): asserts value is T;
}

function toViolation(e: ErrorObject): Violation {
  // `required` reports the parent object; point at the missing member so callers can name it.
  const missing = e.keyword === 'required' ? (e.params as { missingProperty?: string }).missingProperty : undefined;
  const pointer =
    missing !== undefined ? `${e.instancePath}/${missing.replace(/~/g, '~0').replace(/\//g, '~1')}` : e.instancePath;
  const message = missing !== undefined ? 'is required' : (e.message ?? e.keyword);
  return { pointer, keyword: e.keyword, message, params: e.params as Record<string, unknown> };
}

/** Wraps an ajv standalone function (compiled at codegen time) in the typed Validator interface. */
export function createValidator<T>(def: string, fn: ValidateFunction): Validator<T> {
  const is = (value: unknown): value is T => fn(value);
  const validate = ((value: unknown): ValidationResult<T> => {
    if (fn(value)) return { valid: true, value: value as T, violations: [] };
    return { valid: false, violations: (fn.errors ?? []).map(toViolation) };
  }) as Validator<T>;
  Object.defineProperty(validate, 'def', { value: def });
  Object.defineProperty(validate, 'is', { value: is });
  Object.defineProperty(validate, 'assert', {
    value: (value: unknown): void => {
      const result = validate(value);
      if (!result.valid) throw new SchemaValidationError(def, result.violations);
    },
  });
  return validate;
}
