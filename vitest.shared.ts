import type { UserWorkspaceConfig } from 'vitest/config';

/**
 * Every package runs its tests against the TypeScript sources of its workspace dependencies
 * (the `@athkit/source` export condition), so a test never runs on a stale `dist/`.
 * For the SSR (Node) side only `node` is added: vitest hands these conditions to Node as
 * `--conditions`, and `import` there would make CommonJS packages (pg → pg-pool) `require()` an
 * ESM entry and get a namespace object instead of a class.
 */
export function projectConfig(name: string): UserWorkspaceConfig {
  return {
    resolve: { conditions: ['@athkit/source', 'module', 'node', 'import', 'default'] },
    ssr: { resolve: { conditions: ['@athkit/source', 'node'], externalConditions: ['node'] } },
    test: {
      name,
      include: ['test/**/*.test.ts'],
      environment: 'node',
      testTimeout: 30_000,
      hookTimeout: 120_000,
    },
  };
}
