import { generateAgentKey, type AgentKey } from '../../src/index.js';
import { serveIdentityDocument, type ServedIdentity } from '../../src/node/index.js';

export const DEVELOPER = { name: 'Example Corp', id: 'dev-1' };

export interface TestAgent {
  key: AgentKey;
  identity: ServedIdentity;
  agent: { agentId: string; privateKey: AgentKey['privateKey']; kid: string };
}

/** A fresh key and its identity document served on 127.0.0.1. */
export async function startAgent(name = 'Test Agent'): Promise<TestAgent> {
  const key = await generateAgentKey();
  const identity = await serveIdentityDocument({ key, name, developer: DEVELOPER });
  return { key, identity, agent: { agentId: identity.agentId, privateKey: key.privateKey, kid: key.kid } };
}
