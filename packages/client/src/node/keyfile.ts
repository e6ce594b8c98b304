import { exportAgentKey, generateAgentKey, importAgentKey, type AgentKey, type KeyFormat } from '../keys.js';
import { AthClientError } from '../errors.js';
import { isGroupOrWorldReadable, readOptionalFile, writePrivateFile } from './files.js';

/** Reads a private key file (PKCS#8 PEM or private JWK). Refuses files others can read. */
export async function readAgentKey(path: string, options: { kid?: string; allowInsecurePermissions?: boolean } = {}): Promise<AgentKey> {
  const text = await readOptionalFile(path);
  if (text === null) throw new AthClientError('invalid_argument', `no key file at ${path}`);
  if (!options.allowInsecurePermissions && (await isGroupOrWorldReadable(path))) {
    throw new AthClientError('invalid_argument', `the key file ${path} is readable by other users; run chmod 600 on it`);
  }
  return importAgentKey(text, options.kid !== undefined ? { kid: options.kid } : {});
}

/** Writes a private key file with mode 0600 (directory 0700). Refuses to overwrite unless asked. */
export async function writeAgentKey(
  path: string,
  key: AgentKey,
  options: { format?: KeyFormat; overwrite?: boolean } = {},
): Promise<void> {
  const content = await exportAgentKey(key, options.format ?? (path.endsWith('.json') || path.endsWith('.jwk') ? 'jwk' : 'pem'));
  try {
    await writePrivateFile(path, content, { exclusive: !options.overwrite });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new AthClientError('invalid_argument', `a key already exists at ${path}; refusing to overwrite it`);
    }
    throw err;
  }
}

/** Loads the key at `path`, or generates and saves a new one there. */
export async function loadOrCreateAgentKey(path: string, options: { kid?: string; format?: KeyFormat } = {}): Promise<AgentKey> {
  if ((await readOptionalFile(path)) !== null) return readAgentKey(path, options);
  const key = await generateAgentKey(options.kid !== undefined ? { kid: options.kid } : {});
  await writeAgentKey(path, key, options.format ? { format: options.format } : {});
  return key;
}
