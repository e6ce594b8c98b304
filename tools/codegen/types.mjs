import { compile } from 'json-schema-to-typescript';
import { HEADER } from './format.mjs';

/**
 * One exported type per $def. Every $def is compiled as a named root so the names never depend on
 * which definitions happen to reference which.
 */
export async function generateTypes(schema) {
  const defNames = Object.keys(schema.$defs);
  // A $ref with sibling keywords (a description) would become a fresh alias (Identifier1, ...);
  // refer to the named type directly and keep the description as the property's doc comment.
  const useNamedTypes = (node, isDefRoot = false) => {
    if (Array.isArray(node)) return node.map((n) => useNamedTypes(n));
    if (!node || typeof node !== 'object') return node;
    if (!isDefRoot && typeof node.$ref === 'string' && node.$ref.startsWith('#/$defs/')) {
      const { $ref, description } = node;
      return { tsType: $ref.slice('#/$defs/'.length), ...(description ? { description } : {}) };
    }
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, useNamedTypes(v)]));
  };
  const root = {
    $schema: schema.$schema,
    title: 'AthWireMessages',
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(defNames.map((n) => [n, { $ref: `#/$defs/${n}` }])),
    $defs: Object.fromEntries(
      Object.entries(schema.$defs).map(([name, def]) => [name, { ...useNamedTypes(def, true), title: name }]),
    ),
  };
  const ts = await compile(root, 'AthWireMessages', {
    bannerComment: '',
    additionalProperties: true,
    declareExternallyReferenced: true,
    enableConstEnums: false,
    strictIndexSignatures: false,
    unknownAny: true,
    format: false,
    style: { singleQuote: true },
  });
  return `${HEADER}/* eslint-disable */\n${ts}\n/** The name of every $def in ath.schema.json. */\nexport type DefName = ${defNames
    .map((n) => `'${n}'`)
    .join(' | ')};\n`;
}
