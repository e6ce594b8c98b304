#!/usr/bin/env node
// Schema-first code generation: schemas/ath/0.1 -> packages/schemas/src/generated + packages/schemas/json.
//   node tools/codegen/index.mjs          write the generated files
//   node tools/codegen/index.mjs --check  fail (exit 1) with a readable summary when committed output is stale
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateTypes } from './types.mjs';
import { generateValidators } from './validators.mjs';
import { generateEndpoints } from './endpoints.mjs';
import { generateOpenApi } from './openapi.mjs';
import { formatTs } from './format.mjs';
import { loadSchemaSet } from './schemas.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const schemaDir = join(root, 'schemas', 'ath', '0.1');
const outSrc = join(root, 'packages', 'schemas', 'src', 'generated');
const outJson = join(root, 'packages', 'schemas', 'json');

const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));
const stableJson = (value) => JSON.stringify(value, null, 2) + '\n';

async function generate() {
  const set = loadSchemaSet(schemaDir);
  const schema = set.merged;
  const endpoints = readJson(join(schemaDir, 'endpoints.json'));
  checkEndpointsAgainstSchema(schema, endpoints);

  const files = new Map();
  files.set(join(outSrc, 'types.ts'), await formatTs(await generateTypes(schema)));
  const validators = generateValidators(set);
  files.set(join(outSrc, 'validators.raw.ts'), validators.raw);
  files.set(join(outSrc, 'validators.ts'), await formatTs(validators.typed));
  files.set(join(outSrc, 'endpoints.ts'), await formatTs(generateEndpoints(schema, endpoints)));
  files.set(join(outJson, 'ath.schema.json'), stableJson(set.main));
  for (const { file, schema: ext } of set.extensions) files.set(join(outJson, 'extensions', file), stableJson(ext));
  files.set(join(outJson, 'endpoints.json'), stableJson(endpoints));
  files.set(join(outJson, 'openapi.json'), stableJson(generateOpenApi(schema, endpoints)));
  return files;
}

/** endpoints.json may only name $defs and error codes that exist, with the statuses the schema fixes. */
function checkEndpointsAgainstSchema(schema, endpoints) {
  const defs = new Set(Object.keys(schema.$defs));
  const codes = new Set([...schema.$defs.ATHErrorCode.enum, ...schema.$defs.ATHExtensionErrorCode.enum]);
  const problems = [];
  for (const code of codes) {
    if (!(code in endpoints.errorStatus)) problems.push(`errorStatus lacks ${code}`);
  }
  for (const [name, ep] of Object.entries(endpoints.endpoints)) {
    for (const part of [ep.request, ep.response]) {
      if (part?.schema && !defs.has(part.schema)) problems.push(`${name}: unknown $def ${part.schema}`);
    }
    for (const err of ep.errors ?? []) {
      if (!codes.has(err.code)) problems.push(`${name}: unknown error code ${err.code}`);
      else if (endpoints.errorStatus[err.code] !== err.status)
        problems.push(`${name}: ${err.code} listed with ${err.status}, errorStatus says ${endpoints.errorStatus[err.code]}`);
    }
  }
  if (problems.length) throw new Error(`endpoints.json is inconsistent with ath.schema.json:\n  ${problems.join('\n  ')}`);
}

function listFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)],
  );
}

function firstDifference(expected, actual) {
  const a = expected.split('\n');
  const b = actual.split('\n');
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      return `first difference at line ${i + 1}:\n      committed: ${JSON.stringify(b[i] ?? '<end of file>').slice(0, 160)}\n      generated: ${JSON.stringify(a[i] ?? '<end of file>').slice(0, 160)}`;
    }
  }
  return 'contents differ';
}

async function main() {
  const check = process.argv.includes('--check');
  const files = await generate();
  const owned = [...listFiles(outSrc), ...listFiles(outJson)];
  const extra = owned.filter((f) => !files.has(f));

  if (check) {
    const stale = [];
    for (const [file, content] of files) {
      if (!existsSync(file)) stale.push(`  missing  ${relative(root, file)}`);
      else {
        const onDisk = readFileSync(file, 'utf8');
        if (onDisk !== content) stale.push(`  stale    ${relative(root, file)}\n      ${firstDifference(content, onDisk)}`);
      }
    }
    for (const f of extra) stale.push(`  extra    ${relative(root, f)} (not produced by codegen)`);
    if (stale.length) {
      console.error(`codegen:check failed: generated code does not match schemas/ (${stale.length} file(s)):`);
      console.error(stale.join('\n'));
      console.error('Run `npm run codegen` and commit the result.');
      process.exit(1);
    }
    console.log(`codegen:check ok: ${files.size} generated files match schemas/`);
    return;
  }

  for (const f of extra) rmSync(f);
  for (const [file, content] of files) {
    mkdirSync(dirname(file), { recursive: true });
    const current = existsSync(file) ? readFileSync(file, 'utf8') : null;
    if (current !== content) writeFileSync(file, content);
  }
  console.log(`codegen: wrote ${files.size} files to ${relative(root, outSrc)} and ${relative(root, outJson)}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
