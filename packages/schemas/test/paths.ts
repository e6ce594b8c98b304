import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const schemaDir = join(repoRoot, 'schemas', 'ath', '0.1');
export const examplesDir = join(schemaDir, 'examples');
/** shared/ sits beside the clone (CI and developer machines); absent for someone who only cloned the repo. */
export const upstreamDir = join(repoRoot, '..', 'shared', 'spec', 'upstream');
export const hasUpstream = existsSync(join(upstreamDir, 'schema.json'));
