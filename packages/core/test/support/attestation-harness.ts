/**
 * The full verification stack against a real agent-document server: AD + safe fetcher (allowing
 * only AD's host:port over http) + resolver + verifier + MemoryStore, all on one ManualClock.
 *
 *   const h = await createAttestationHarness();
 *   const a = await h.ad.addAgent('a');
 *   await h.verifier.verify(await h.mint(a), { audiences: h.audiences, agentId: a.agentId });
 *   await h.close();
 */
import { acceptedAudiences } from '../../src/attestation/audience.js';
import { AttestationVerifier, type AttestationVerifierOptions } from '../../src/attestation/verify.js';
import { ManualClock } from '../../src/clock.js';
import {
  createSafeFetcher,
  type SafeFetcher,
  type SafeFetcherOptions,
} from '../../src/identity/node-fetcher.js';
import { IdentityResolver, type IdentityResolverOptions } from '../../src/identity/resolver.js';
import { MemoryStore } from '../../src/memory-store.js';
import { startAgentServer, type AgentServer, type TestAgent } from './agent-server.js';

export const TEST_BASE = 'https://gw.test';

export interface AttestationHarness {
  ad: AgentServer;
  clock: ManualClock;
  fetcher: SafeFetcher;
  resolver: IdentityResolver;
  store: MemoryStore;
  verifier: AttestationVerifier;
  /** Accepted audiences of the register endpoint at TEST_BASE. */
  audiences: ReadonlySet<string>;
  /** A valid attestation for `agent` (aud = TEST_BASE), minted at the harness clock. */
  mint(
    agent: TestAgent,
    overrides?: Parameters<TestAgent['mint']>[0] extends infer O ? Partial<O> : never,
  ): Promise<string>;
  close(): Promise<void>;
}

export async function createAttestationHarness(
  options: {
    fetcher?: Partial<SafeFetcherOptions>;
    resolver?: Partial<Omit<IdentityResolverOptions, 'fetcher' | 'clock'>>;
    verifier?: Partial<Omit<AttestationVerifierOptions, 'resolver' | 'replay' | 'clock'>>;
  } = {},
): Promise<AttestationHarness> {
  const ad = await startAgentServer();
  const clock = new ManualClock(Date.now());
  const fetcher = createSafeFetcher({
    allowInsecure: [ad.hostPort],
    connectTimeoutMs: 1000,
    readTimeoutMs: 2000,
    ...options.fetcher,
  });
  const resolver = new IdentityResolver({ fetcher, clock, ...options.resolver });
  const store = new MemoryStore();
  const verifier = new AttestationVerifier({ resolver, replay: store, clock, ...options.verifier });
  return {
    ad,
    clock,
    fetcher,
    resolver,
    store,
    verifier,
    audiences: acceptedAudiences(TEST_BASE, '/ath/agents/register', 'origin-or-endpoint'),
    mint: (agent, overrides = {}) => agent.mint({ aud: TEST_BASE, clock, ...overrides }),
    async close() {
      await fetcher.close();
      await ad.close();
    },
  };
}
