import { validateAgentIdentityDocument, type AgentIdentityDocument } from '@athkit/schemas';
import { attestationFailure } from './failure.js';
import type { FetchedDocument } from './fetcher.js';
import { importAgentKeys, type AgentKey } from './keys.js';

/** Identity documents are flat; anything deeper than this is an attack on the parser, not a document. */
export const MAX_DOCUMENT_DEPTH = 16;

const JSON_MEDIA_TYPE = /^application\/(?:[a-z0-9.!#$&^_-]+\+)?json$/;

function invalid(message: string): never {
  throw attestationFailure('invalid_identity_document', message);
}

/**
 * True when brackets nest deeper than `limit` (outside strings). A linear scan, so a 64 KiB wall
 * of `[` is refused before JSON.parse or the schema validator ever recurse into it (threats B7).
 */
export function exceedsJsonDepth(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > limit) return true;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) depth--;
  }
  return false;
}

/**
 * Turns a fetched response into a validated document and imported keys, or throws
 * INVALID_ATTESTATION. `agentId` is the URL that was fetched: the document must name itself with
 * exactly that string (the CIMD self-reference rule), so a document served at A's URL can never
 * speak for B (threats B9).
 */
export async function parseIdentityDocument(
  fetched: FetchedDocument,
  agentId: string,
): Promise<{ document: AgentIdentityDocument; keys: AgentKey[] }> {
  if (fetched.status !== 200) {
    throw attestationFailure(
      'identity_document_unavailable',
      `The identity document URL answered HTTP ${fetched.status}`,
      {
        status: fetched.status,
      },
    );
  }
  const mediaType = fetched.contentType?.split(';', 1)[0]!.trim().toLowerCase() ?? '';
  if (!JSON_MEDIA_TYPE.test(mediaType)) invalid('The identity document must be served as application/json');
  if (exceedsJsonDepth(fetched.body, MAX_DOCUMENT_DEPTH))
    invalid('The identity document is nested too deeply');

  let value: unknown;
  try {
    value = JSON.parse(fetched.body);
  } catch {
    invalid('The identity document is not valid JSON');
  }
  const result = validateAgentIdentityDocument(value);
  if (!result.valid) {
    const first = result.violations[0];
    invalid(
      `The identity document is not a valid AgentIdentityDocument${first ? ` (${first.pointer || '/'}: ${first.message})` : ''}`,
    );
  }
  const document = result.value;
  if (document.agent_id !== agentId)
    invalid('The identity document agent_id does not equal the URL it was fetched from');
  const keys = await importAgentKeys(document.public_key);
  return { document, keys };
}
