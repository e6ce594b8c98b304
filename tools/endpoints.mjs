#!/usr/bin/env node
// Prints the ATH endpoint table (`npm run endpoints`)
// that @athkit/schemas generates from schemas/ath/0.1/endpoints.json.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { version, endpoints, errorStatus } = JSON.parse(
  readFileSync(join(root, 'packages/schemas/json/endpoints.json'), 'utf8'),
);

const rows = Object.entries(endpoints).map(([name, ep]) => [
  ep.method,
  ep.path,
  ep.request?.schema ?? '-',
  `${ep.response.status} ${ep.response.schema ?? ep.response.contentType ?? ''}`.trim(),
  ep.auth,
  name,
]);
const header = ['METHOD', 'PATH', 'REQUEST', 'RESPONSE', 'AUTH', 'NAME'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join('  ').trimEnd();

console.log(`ATH protocol ${version}: endpoints (schemas/ath/0.1/endpoints.json)\n`);
console.log(line(header));
console.log(line(widths.map((w) => '-'.repeat(w))));
for (const r of rows) console.log(line(r));
console.log(`\nError codes: ${Object.entries(errorStatus).map(([c, s]) => `${c} ${s}`).join(', ')}`);
