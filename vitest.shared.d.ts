import type { UserWorkspaceConfig } from 'vitest/config';
/**
 * Every package runs its tests against the TypeScript sources of its workspace dependencies
 * (the `@athkit/source` export condition), so a test never runs on a stale `dist/`.
 */
export declare const SOURCE_CONDITIONS: string[];
export declare function projectConfig(name: string): UserWorkspaceConfig;
//# sourceMappingURL=vitest.shared.d.ts.map