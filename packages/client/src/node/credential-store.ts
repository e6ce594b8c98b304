import { createHash } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Vault } from '@athkit/core';
import { AthClientError } from '../errors.js';
import type { CredentialStore, StoredCredentials } from '../store.js';
import { ensurePrivateDir, readOptionalFile, writePrivateFile } from './files.js';

function slug(url: string): string {
  let host = 'agent';
  try {
    const u = new URL(url);
    host = `${u.hostname}${u.port ? `_${u.port}` : ''}`;
  } catch {
    // not a URL: hash only
  }
  const safe = host.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
  return `${safe}-${createHash('sha256').update(url).digest('hex').slice(0, 16)}`;
}

/** A sealed file: who and where in clear (public URLs), the record itself encrypted. */
interface SealedFile {
  format: typeof SEALED_FORMAT;
  agentId: string;
  server: string;
  sealed: string;
}

const SEALED_FORMAT = 'athkit-credentials-sealed-v1';

export interface FileCredentialStoreOptions {
  /**
   * 32 bytes (raw, or base64url text): files are then sealed with AES-256-GCM (core's Vault), bound
   * to their agent and server, so a file copied without the key, or moved to another name, reveals
   * and grants nothing (CL-15, CL-16). Without a key files are plain JSON, protected by their mode only.
   */
  key?: Uint8Array | string;
}

/**
 * Credentials on disk: `<dir>/<agent>/<server>.json`, one directory per agent (0700) and one file
 * per server (0600, written atomically). With a `key` the client secret and tokens are encrypted
 * at rest; plain files written without a key are still read, and sealed when next written.
 */
export class FileCredentialStore implements CredentialStore {
  private readonly vault: Promise<Vault> | null;

  constructor(
    readonly dir: string,
    options: FileCredentialStoreOptions = {},
  ) {
    this.vault = options.key === undefined ? null : Vault.create(options.key);
    // A bad key is reported by the first load/save; this keeps an unawaited rejection from escaping.
    this.vault?.catch(() => undefined);
  }

  /** Whether files are written encrypted. */
  get encrypted(): boolean {
    return this.vault !== null;
  }

  /** The directory holding one agent's credentials. */
  agentDir(agentId: string): string {
    return join(this.dir, slug(agentId));
  }

  /** The file holding one agent's credentials for one server. */
  file(agentId: string, server: string): string {
    return join(this.agentDir(agentId), `${slug(server)}.json`);
  }

  async load(agentId: string, server: string): Promise<StoredCredentials | null> {
    const text = await readOptionalFile(this.file(agentId, server));
    if (text === null) return null;
    const record = await this.decode(text);
    if (record.agentId !== agentId || record.server !== server) return null;
    if (!record.sealedOnDisk && this.vault) await this.sealInPlace(record.credentials, text);
    return record.credentials;
  }

  async save(credentials: StoredCredentials): Promise<void> {
    await ensurePrivateDir(this.dir);
    const body = this.vault
      ? ({
          format: SEALED_FORMAT,
          agentId: credentials.agentId,
          server: credentials.server,
          sealed: await (await this.vaultOrFail()).seal(recordId(credentials.agentId, credentials.server), credentials),
        } satisfies SealedFile)
      : credentials;
    await writePrivateFile(this.file(credentials.agentId, credentials.server), `${JSON.stringify(body, null, 2)}\n`);
  }

  /** Seals a plain file read as `text`, unless another process changed it meanwhile (its save then stands). */
  private async sealInPlace(credentials: StoredCredentials, text: string): Promise<void> {
    const file = this.file(credentials.agentId, credentials.server);
    if ((await readOptionalFile(file)) === text) await this.save(credentials);
  }

  async remove(agentId: string, server: string): Promise<void> {
    await rm(this.file(agentId, server), { force: true });
  }

  /** Every stored record of one agent (all servers). */
  async list(agentId: string): Promise<StoredCredentials[]> {
    let names: string[];
    try {
      names = await readdir(this.agentDir(agentId));
    } catch {
      return [];
    }
    const out: StoredCredentials[] = [];
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const text = await readOptionalFile(join(this.agentDir(agentId), name));
      if (text !== null) out.push((await this.decode(text)).credentials);
    }
    return out;
  }

  private async decode(text: string): Promise<{ agentId: string; server: string; credentials: StoredCredentials; sealedOnDisk: boolean }> {
    const parsed = JSON.parse(text) as StoredCredentials | SealedFile;
    if (!('format' in parsed) || parsed.format !== SEALED_FORMAT) {
      const plain = parsed as StoredCredentials;
      return { agentId: plain.agentId, server: plain.server, credentials: plain, sealedOnDisk: false };
    }
    if (!this.vault) {
      throw new AthClientError('credentials_locked', `The stored credentials for ${parsed.server} are encrypted; no key was given to open them`);
    }
    const vault = await this.vaultOrFail();
    let credentials: StoredCredentials;
    try {
      // The agent and server are authenticated data: a file renamed or edited does not open.
      credentials = await vault.open<StoredCredentials>(recordId(parsed.agentId, parsed.server), parsed.sealed);
    } catch {
      throw new AthClientError('credentials_locked', `The stored credentials for ${parsed.server} do not open with this key (another key, or the file was changed)`);
    }
    return { agentId: parsed.agentId, server: parsed.server, credentials, sealedOnDisk: true };
  }

  private async vaultOrFail(): Promise<Vault> {
    try {
      return await this.vault!;
    } catch {
      throw new AthClientError('invalid_argument', 'The credential key must be 32 bytes (raw, or base64url text)');
    }
  }
}

const recordId = (agentId: string, server: string) => JSON.stringify(['ath-credentials', agentId, server]);
