import { createHash } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
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

/**
 * Credentials on disk: `<dir>/<agent>/<server>.json`, one directory per agent (0700) and one file
 * per server (0600, written atomically). Files hold the client secret and access tokens in clear
 * text, protected by file permissions (CL-15, CL-16): keep `dir` on a private, encrypted disk.
 */
export class FileCredentialStore implements CredentialStore {
  constructor(readonly dir: string) {}

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
    const parsed = JSON.parse(text) as StoredCredentials;
    return parsed.agentId === agentId && parsed.server === server ? parsed : null;
  }

  async save(credentials: StoredCredentials): Promise<void> {
    await ensurePrivateDir(this.dir);
    await writePrivateFile(this.file(credentials.agentId, credentials.server), `${JSON.stringify(credentials, null, 2)}\n`);
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
      if (text !== null) out.push(JSON.parse(text) as StoredCredentials);
    }
    return out;
  }
}
