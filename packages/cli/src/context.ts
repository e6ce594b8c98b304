import { randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { AthClientError, GatewayClient, NativeClient, type AgentKey, type AthClientOptions } from '@athkit/client';
import type { DeveloperInfo } from '@athkit/schemas';
import { FileCredentialStore, isGroupOrWorldReadable, readAgentKey, readOptionalFile, writePrivateFile } from '@athkit/client/node';
import { ConfigError } from './errors.js';

/** Keys `ath config` knows, with what they mean. */
export const CONFIG_KEYS = {
  agent_id: 'the agent_id: https URL where the identity document is published',
  key_file: 'path of the private key (default <home>/agent-key.pem)',
  name: 'agent name in the identity document',
  developer_name: 'developer name (identity document and registration)',
  developer_id: 'developer id (identity document and registration)',
  developer_contact: 'developer security contact e-mail (optional)',
  server: 'the ATH server: a gateway URL or a native service URL',
  mode: '"native" or "gateway" (detected by `ath discover --save` or `ath register`)',
  provider: 'default provider_id in gateway mode',
  scopes: 'default scopes, comma-separated',
  redirect_uri: 'default loopback redirect URI for `ath authorize --listen`',
} as const;

export type ConfigKey = keyof typeof CONFIG_KEYS;
export type Config = Partial<Record<ConfigKey, string>>;

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

/** A 32-byte key written as base64url text (surrounding whitespace allowed), or null. */
function decodeKey(text: string): Uint8Array | null {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9_-]{43}$/.test(trimmed)) return null;
  const key = Buffer.from(trimmed, 'base64url');
  return key.length === 32 ? key : null;
}

/** The per-user directory: `$ATH_HOME`, else `~/.config/ath`. */
export function athHome(env: NodeJS.ProcessEnv): string {
  const home = env['ATH_HOME'];
  return home && home.trim() !== '' ? resolve(home) : join(env['HOME'] ?? homedir(), '.config', 'ath');
}

export class Context {
  readonly home: string;
  config: Config = {};

  constructor(readonly io: Io) {
    this.home = athHome(io.env);
  }

  get configFile(): string {
    return join(this.home, 'config.json');
  }

  get keyFile(): string {
    return this.config.key_file ? resolve(this.home, this.config.key_file) : join(this.home, 'agent-key.pem');
  }

  get credentialKeyFile(): string {
    return join(this.home, 'credentials.key');
  }

  /**
   * The key the credential files are sealed with (CL-15, CL-16): `ATH_CREDENTIALS_KEY` (32 bytes,
   * base64url) when set, so the key can live in a secret manager; otherwise `credentials.key` in
   * the home directory (0600), created on first use. The files then reveal nothing when copied,
   * synced or backed up without the key.
   */
  async credentialKey(): Promise<Uint8Array> {
    const fromEnv = this.io.env['ATH_CREDENTIALS_KEY'];
    if (fromEnv !== undefined && fromEnv.trim() !== '') {
      const key = decodeKey(fromEnv);
      if (!key) {
        throw new ConfigError('ATH_CREDENTIALS_KEY must be 32 random bytes in base64url (43 characters)', 'generate one with: node -e "console.log(require(\'crypto\').randomBytes(32).toString(\'base64url\'))"');
      }
      return key;
    }
    const stored = await this.readCredentialKey();
    if (stored) return stored;
    try {
      // Exclusive: of two first runs at once, one key wins and both use it.
      await writePrivateFile(this.credentialKeyFile, `${randomBytes(32).toString('base64url')}\n`, { exclusive: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    return (await this.readCredentialKey())!;
  }

  private async readCredentialKey(): Promise<Uint8Array | null> {
    const stored = await readOptionalFile(this.credentialKeyFile);
    if (stored === null) return null;
    if (await isGroupOrWorldReadable(this.credentialKeyFile)) {
      throw new ConfigError(`the credential key ${this.credentialKeyFile} is readable by other users`, `run chmod 600 ${this.credentialKeyFile}`);
    }
    const key = decodeKey(stored);
    if (!key) {
      throw new ConfigError(`${this.credentialKeyFile} is not a 32-byte base64url key`, 'restore it from a backup, or delete it and the credentials/ directory and register again');
    }
    return key;
  }

  async store(): Promise<FileCredentialStore> {
    return new FileCredentialStore(join(this.home, 'credentials'), { key: await this.credentialKey() });
  }

  async load(): Promise<void> {
    const text = await readOptionalFile(this.configFile);
    if (text === null) return;
    try {
      this.config = JSON.parse(text) as Config;
    } catch {
      throw new ConfigError(`${this.configFile} is not valid JSON`, 'fix or delete the file');
    }
  }

  async save(): Promise<void> {
    await writePrivateFile(this.configFile, `${JSON.stringify(this.config, null, 2)}\n`);
  }

  require(key: ConfigKey, how: string): string {
    const value = this.config[key];
    if (!value) throw new ConfigError(`${key} is not configured`, how);
    return value;
  }

  async key(): Promise<AgentKey> {
    const existing = await readOptionalFile(this.keyFile);
    if (existing === null) throw new ConfigError(`no agent key at ${this.keyFile}`, 'run `ath keygen` first');
    try {
      return await readAgentKey(this.keyFile);
    } catch (err) {
      if (err instanceof AthClientError) throw new ConfigError(err.message);
      throw err;
    }
  }

  developer(): DeveloperInfo {
    const name = this.require('developer_name', 'run `ath config set developer_name "Your Org"`');
    const id = this.require('developer_id', 'run `ath config set developer_id your-org`');
    return { name, id, ...(this.config.developer_contact ? { contact: this.config.developer_contact } : {}) };
  }

  server(override: string | undefined): string {
    return override ?? this.require('server', 'pass --server <url> or run `ath config set server <url>`');
  }

  async clientOptions(timeoutSeconds: number | undefined): Promise<AthClientOptions> {
    const agentId = this.require('agent_id', 'run `ath config set agent_id https://your-agent.example/.well-known/agent.json`');
    const key = await this.key();
    return {
      agent: { agentId, privateKey: key.privateKey, kid: key.kid },
      store: await this.store(),
      ...(timeoutSeconds !== undefined ? { timeoutMs: timeoutSeconds * 1000 } : {}),
    };
  }

  /** Whether `server` is a native service (ath-app.json) or a gateway (ath.json); remembered in config. */
  async detectMode(server: string, options: AthClientOptions): Promise<'native' | 'gateway'> {
    if (this.config.server === server && (this.config.mode === 'native' || this.config.mode === 'gateway')) return this.config.mode;
    try {
      await NativeClient.discover(server, options);
      return 'native';
    } catch (err) {
      if (err instanceof AthClientError && err.status === 404) return 'gateway';
      throw err;
    }
  }

  async client(serverOverride: string | undefined, timeoutSeconds: number | undefined): Promise<NativeClient | GatewayClient> {
    const server = this.server(serverOverride);
    const options = await this.clientOptions(timeoutSeconds);
    const mode = await this.detectMode(server, options);
    return mode === 'native' ? NativeClient.discover(server, options) : GatewayClient.discover(server, options);
  }
}
