// Writes the per-package tsconfig/vitest/eslint boilerplate so every package is set up the same way.
// Usage: node tools/new-package-config.mjs <dir> <vitest-name> [referenced package dirs...]
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const [dir, name, ...refs] = process.argv.slice(2);
if (!dir || !name) throw new Error('usage: new-package-config.mjs <dir> <name> [refs...]');
const toRoot = relative(dir, '.') || '.';
const json = (file, value) => writeFileSync(join(dir, file), JSON.stringify(value, null, 2) + '\n');

json('tsconfig.json', {
  extends: `${toRoot}/tsconfig.base.json`,
  files: [],
  include: [],
  references: [{ path: './tsconfig.lib.json' }, { path: './tsconfig.spec.json' }],
});
json('tsconfig.lib.json', {
  extends: `${toRoot}/tsconfig.base.json`,
  compilerOptions: { rootDir: 'src', outDir: 'dist', tsBuildInfoFile: 'dist/tsconfig.lib.tsbuildinfo' },
  include: ['src/**/*.ts'],
  references: refs.map((r) => ({ path: `${relative(dir, r)}/tsconfig.lib.json` })),
});
json('tsconfig.spec.json', {
  extends: `${toRoot}/tsconfig.base.json`,
  compilerOptions: { rootDir: '.', outDir: 'out-tsc/vitest', tsBuildInfoFile: 'out-tsc/vitest/tsconfig.spec.tsbuildinfo' },
  include: ['test/**/*.ts'],
  references: [{ path: './tsconfig.lib.json' }, ...refs.map((r) => ({ path: `${relative(dir, r)}/tsconfig.lib.json` }))],
});
writeFileSync(
  join(dir, 'vitest.config.ts'),
  `import { defineProject } from 'vitest/config';\nimport { projectConfig } from '${toRoot}/vitest.shared.js';\n\nexport default defineProject(projectConfig('${name}'));\n`,
);
writeFileSync(join(dir, 'eslint.config.mjs'), `export { default } from '${toRoot}/eslint.config.mjs';\n`);
