#!/usr/bin/env node
// Copies the schema example corpus (schemas/ath/0.1/examples) into this package as examples/, so
// `ath-conformance validate --examples` works from the packed tarball. Runs on `npm pack` (prepack).
import { cpSync, existsSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const from = fileURLToPath(new URL('../../../schemas/ath/0.1/examples', import.meta.url));
const to = fileURLToPath(new URL('../examples', import.meta.url));
if (!existsSync(from)) {
  console.error(`copy-examples: ${from} not found`);
  process.exit(1);
}
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true });
console.log(`copy-examples: ${from} → ${to}`);
