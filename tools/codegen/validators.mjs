import Ajv2020, { _ } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import standaloneCode from 'ajv/dist/standalone/index.js';
import { HEADER } from './format.mjs';

/**
 * The options every validator of ours is compiled with. `unicode: false` counts string length in
 * UTF-16 units instead of calling ajv's CommonJS ucs2length helper at run time; every length cap in
 * ath.schema.json applies to ASCII-only values (or is a generous size bound), so the result is the same.
 */
export const AJV_OPTIONS = { strict: true, allErrors: true, unicode: false };

// ajv flags `unicode` as deprecated; it is a deliberate choice here (see above), so that one notice is dropped.
const logger = {
  log: console.log,
  error: console.error,
  warn: (...args) => (String(args[0]).startsWith('DEPRECATED: option unicode') ? undefined : console.warn(...args)),
};

/**
 * ajv standalone code, compiled here instead of at start-up. Formats are bound to a named ESM import
 * of ajv-formats instead of the require() ajv would emit, so the validators load the same way under
 * Node, bundlers and runtimes without a CommonJS loader. Any other require() fails codegen loudly.
 */
export function generateValidators({ main, extensions, defSource }) {
  const defNames = [...defSource.keys()];
  const ajv = new Ajv2020.default({ ...AJV_OPTIONS, logger, code: { source: true, esm: true, lines: true, formats: _`__formats` } });
  addFormats.default(ajv);
  ajv.addSchema(main);
  for (const { schema } of extensions) ajv.addSchema(schema);
  const refs = Object.fromEntries(defNames.map((n) => [`raw${n}`, `${defSource.get(n)}#/$defs/${n}`]));
  let code = standaloneCode.default(ajv, refs);

  const leftover = code.match(/require\("[^"]+"\)/g);
  if (leftover) throw new Error(`ajv emitted CommonJS require() calls codegen cannot bind: ${[...new Set(leftover)].join(', ')}`);
  code = code.replace(/^"use strict";\n?/, '');
  const importLines = code.includes('__formats') ? `import { fullFormats as __formats } from 'ajv-formats/dist/formats.js';` : '';
  const raw = `${HEADER}// @ts-nocheck\n/* eslint-disable */\n${importLines}\n${code}\n`;

  const typed = `${HEADER}
import type { ValidateFunction } from 'ajv';
import * as raw from './validators.raw.js';
import type * as T from './types.js';
import { createValidator, type Validator } from '../validator.js';

${defNames
  .map(
    (n) => `/** Validates a value against \`$defs/${n}\` of ath.schema.json. */
export const validate${n}: Validator<T.${n}> = createValidator<T.${n}>('${n}', raw.raw${n} as unknown as ValidateFunction);
/** Throws a SchemaValidationError listing every violation (with its JSON pointer) unless the value is a valid \`${n}\`. */
export function assert${n}(value: unknown): asserts value is T.${n} {
  validate${n}.assert(value);
}`,
  )
  .join('\n\n')}

/** Every validator, by $def name. */
export const validators = {
${defNames.map((n) => `  ${n}: validate${n},`).join('\n')}
} as const;
`;
  return { raw, typed };
}
