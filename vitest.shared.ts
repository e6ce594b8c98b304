import type { UserWorkspaceConfig } from 'vitest/config';

/**
 * Every package runs its tests against the TypeScript sources of its workspace dependencies
 * (the `@athkit/source` export condition), so a test never runs on a stale `dist/`.
 */
export const SOURCE_CONDITIONS = ['@athkit/source', 'module', 'node', 'import', 'default'];

export function projectConfig(name: string): UserWorkspaceConfig {
  return {
    resolve: { conditions: SOURCE_CONDITIONS },
    ssr: { resolve: { conditions: SOURCE_CONDITIONS, externalConditions: ['node', 'import', 'default'] } },
    test: {
      name,
      include: ['test/**/*.test.ts'],
      environment: 'node',
      testTimeout: 30_000,
      hookTimeout: 60_000,
    },
  };
}
