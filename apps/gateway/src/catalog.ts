import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ProviderCatalog, ProviderConfig } from '@athkit/core';
import { ConfigError, parseProviderConfig, providerToJson, toCoreProvider, type GatewayProviderConfig } from './config.js';
import { ScopeMap } from './scope-map.js';

/** A provider as the running gateway uses it: config, compiled scope map, parsed API base. */
export interface LiveProvider {
  config: GatewayProviderConfig;
  scopeMap: ScopeMap;
  apiBase: URL;
  core: ProviderConfig;
}

interface OverridesFile {
  version: 1;
  /** Providers added or replaced through the admin API (full definitions, secrets by env name). */
  upserts: Record<string, unknown>;
  /** provider_ids deleted through the admin API (also hides a provider of the config file). */
  deleted: string[];
}

function live(config: GatewayProviderConfig): LiveProvider {
  return {
    config,
    scopeMap: ScopeMap.compile(config.scope_map),
    apiBase: new URL(config.api_base),
    core: toCoreProvider(config),
  };
}

/**
 * The gateway's provider catalog, changeable at run time through the admin API ("live without
 * restart"). The config file is the base; admin changes are kept as overrides (upserts and deletions)
 * in a small JSON file (`providersFile`, default `<sqlite db>.providers.json`) that is rewritten
 * atomically (write + rename) on each change and applied on top of the config at start. Without a
 * file (memory or PostgreSQL storage and no `providersFile`) changes live in memory until restart;
 * instances sharing PostgreSQL should share one file or keep providers in the config.
 */
export class ProviderRegistry implements ProviderCatalog {
  private readonly byId = new Map<string, LiveProvider>();
  private overrides: OverridesFile = { version: 1, upserts: {}, deleted: [] };
  private listeners: ((providerId: string) => void)[] = [];

  private constructor(
    private readonly file: string | null,
    private readonly env: Readonly<Record<string, string | undefined>>,
    private readonly dev: boolean,
  ) {}

  static async open(
    base: readonly GatewayProviderConfig[],
    options: { file: string | null; env?: Readonly<Record<string, string | undefined>>; dev?: boolean },
  ): Promise<ProviderRegistry> {
    const registry = new ProviderRegistry(options.file, options.env ?? process.env, options.dev ?? false);
    for (const p of base) registry.byId.set(p.provider_id, live(p));
    if (options.file) {
      let text: string | null = null;
      try {
        text = await readFile(options.file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      if (text !== null) {
        const parsed = JSON.parse(text) as OverridesFile;
        registry.overrides = { version: 1, upserts: parsed.upserts ?? {}, deleted: parsed.deleted ?? [] };
        for (const id of registry.overrides.deleted) registry.byId.delete(id);
        for (const [id, raw] of Object.entries(registry.overrides.upserts)) {
          try {
            registry.byId.set(id, live(parseProviderConfig(raw, registry.env, registry.dev)));
          } catch (err) {
            const issues = err instanceof ConfigError ? err.issues : [String(err)];
            throw new ConfigError(issues.map((i) => `providers file ${options.file} [${id}]: ${i}`));
          }
        }
      }
    }
    return registry;
  }

  /** Called with a provider_id after it changed or was removed (e.g. to forget discovered metadata). */
  onChange(listener: (providerId: string) => void): void {
    this.listeners.push(listener);
  }

  get(providerId: string): ProviderConfig | undefined {
    return this.byId.get(providerId)?.core;
  }

  list(): ProviderConfig[] {
    return [...this.byId.values()].map((p) => p.core);
  }

  live(providerId: string): LiveProvider | undefined {
    return this.byId.get(providerId);
  }

  configs(): GatewayProviderConfig[] {
    return [...this.byId.values()].map((p) => p.config);
  }

  /** Adds or replaces a provider (validated like the config file); persisted before it takes effect. */
  async upsert(raw: unknown): Promise<{ provider: GatewayProviderConfig; created: boolean }> {
    const config = parseProviderConfig(raw, this.env, this.dev);
    const id = config.provider_id;
    const created = !this.byId.has(id);
    const next: OverridesFile = {
      version: 1,
      upserts: { ...this.overrides.upserts, [id]: providerToJson(config) },
      deleted: this.overrides.deleted.filter((d) => d !== id),
    };
    await this.persist(next);
    this.overrides = next;
    this.byId.set(id, live(config));
    for (const l of this.listeners) l(id);
    return { provider: config, created };
  }

  async remove(providerId: string): Promise<boolean> {
    if (!this.byId.has(providerId)) return false;
    const { [providerId]: _removed, ...upserts } = this.overrides.upserts;
    const next: OverridesFile = { version: 1, upserts, deleted: [...new Set([...this.overrides.deleted, providerId])] };
    await this.persist(next);
    this.overrides = next;
    this.byId.delete(providerId);
    for (const l of this.listeners) l(providerId);
    return true;
  }

  private async persist(next: OverridesFile): Promise<void> {
    if (!this.file) return;
    await mkdir(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(next, null, 2) + '\n', { mode: 0o600 });
    await rename(tmp, this.file);
  }
}
