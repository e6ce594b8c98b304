import { attestationFailure } from './failure.js';

/** Same bound as the schema's `agent_id.maxLength`. */
export const MAX_AGENT_ID_LENGTH = 2048;

function invalid(message: string): never {
  throw attestationFailure('invalid_agent_id', message);
}

/**
 * Checks that `agentId` is a canonical absolute https URL we are willing to fetch (C-027, AMB-25,
 * threats B8) and returns it parsed. Canonical means `new URL(agentId).href === agentId`: one agent
 * has exactly one spelling, so `HTTPS://Agent.Example/...`, `https://a.test:443/...`, numeric IPv4
 * forms and the like are refused instead of silently becoming a second identity. Plain http is
 * accepted only when `insecureAllowed` says so (the test/dev allow-list). The
 * `/.well-known/agent.json` path is conventional and deliberately not enforced (AMB-25).
 */
export function parseAgentId(agentId: unknown, insecureAllowed: (url: URL) => boolean = () => false): URL {
  if (typeof agentId !== 'string' || agentId.length === 0) invalid('agent_id must be a non-empty string');
  if (agentId.length > MAX_AGENT_ID_LENGTH)
    invalid(`agent_id must be at most ${MAX_AGENT_ID_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(agentId);
  } catch {
    invalid('agent_id must be an absolute URL');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && insecureAllowed(url)))
    invalid('agent_id must be an https URL');
  if (url.username !== '' || url.password !== '') invalid('agent_id must not contain userinfo');
  if (agentId.includes('#')) invalid('agent_id must not contain a fragment');
  if (agentId.includes('?')) invalid('agent_id must not contain a query');
  if (url.hostname === '' || url.hostname.endsWith('.'))
    invalid('agent_id host must be a fully qualified name without a trailing dot');
  if (url.href !== agentId) invalid('agent_id must be in canonical URL form');
  return url;
}
