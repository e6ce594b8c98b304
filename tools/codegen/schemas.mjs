import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The schema set: ath.schema.json plus our extensions (extensions/*.schema.json, e.g. the 9-step
 * handshake). Extensions keep their own $id and may $ref the main schema by relative URI
 * (`../ath.schema.json#/$defs/ScopeToken`); ajv resolves those itself. Types and OpenAPI use one
 * merged view in which every cross-file reference becomes a local `#/$defs/X`, so every $def name
 * must be unique across the set.
 */
export function loadSchemaSet(schemaDir) {
  const read = (file) => JSON.parse(readFileSync(file, 'utf8'));
  const main = read(join(schemaDir, 'ath.schema.json'));
  const extDir = join(schemaDir, 'extensions');
  const extensions = existsSync(extDir)
    ? readdirSync(extDir)
        .filter((f) => f.endsWith('.schema.json'))
        .sort()
        .map((file) => ({ file, schema: read(join(extDir, file)) }))
    : [];

  const defSource = new Map(Object.keys(main.$defs).map((name) => [name, main.$id]));
  for (const { file, schema } of extensions) {
    if (!schema.$id || !schema.$defs) throw new Error(`extensions/${file} needs an $id and $defs`);
    for (const name of Object.keys(schema.$defs)) {
      if (defSource.has(name)) throw new Error(`$def ${name} of extensions/${file} is already defined in ${defSource.get(name)}`);
      defSource.set(name, schema.$id);
    }
  }

  const localise = (node) => {
    if (Array.isArray(node)) return node.map(localise);
    if (!node || typeof node !== 'object') return node;
    return Object.fromEntries(
      Object.entries(node).map(([k, v]) =>
        k === '$ref' && typeof v === 'string' && v.includes('#/$defs/') ? [k, `#/$defs/${v.split('#/$defs/')[1]}`] : [k, localise(v)],
      ),
    );
  };
  const merged = {
    ...main,
    $defs: Object.assign({}, main.$defs, ...extensions.map((e) => localise(e.schema.$defs))),
  };
  return { main, extensions, merged, defSource };
}
