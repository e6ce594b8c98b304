/**
 * Agent identity documents on a real loopback server (127.0.0.1, port 0), with keys from
 * @athkit/core, so the engine under test fetches and verifies exactly as in production (with
 * `identity.allowInsecure: [server.hostPort]`).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportPublicJwk, generateAgentKeyPair, signAttestation, type Clock } from '@athkit/core';

export interface TestAgent {
  agentId: string;
  name: string;
  /** A fresh attestation for `aud` (new jti every call). */
  mint(aud: string | string[]): Promise<string>;
}

export interface AgentServer {
  hostPort: string;
  add(name: string, options?: { displayName?: string }): Promise<TestAgent>;
  close(): Promise<void>;
}

export async function startAgentServer(clock?: Clock): Promise<AgentServer> {
  const docs = new Map<string, string>();
  const server = http.createServer((req, res) => {
    const doc = docs.get(req.url ?? '');
    if (!doc) {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(doc);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const hostPort = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    hostPort,
    async add(name, options = {}) {
      const { privateKey, publicKey } = await generateAgentKeyPair();
      const path = `/agents/${name}/.well-known/agent.json`;
      const agentId = `http://${hostPort}${path}`;
      const displayName = options.displayName ?? `Agent ${name}`;
      docs.set(
        path,
        JSON.stringify({
          ath_version: '0.1',
          agent_id: agentId,
          name: displayName,
          developer: { name: 'Test Developer', id: 'dev-test' },
          public_key: await exportPublicJwk(publicKey, 'k1'),
        }),
      );
      return {
        agentId,
        name: displayName,
        mint: (aud) => signAttestation({ privateKey, kid: 'k1', agentId, audience: aud, ...(clock ? { clock } : {}) }),
      };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
