/**
 * Seed 002's story, end to end on 127.0.0.1: ATH Shop (apps/demo-shop) and a shopping assistant
 * built on NativeClient. Each step prints the real HTTP calls it made.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AthClientError,
  NativeClient,
  generateAgentKey,
  processProtectedResourceResponse,
  protectedResourceRequest,
  type StoredToken,
} from '@athkit/client';
import { serveIdentityDocument } from '@athkit/client/node';
import { createShop, DEMO_USERS, type Order, type Product } from '@athkit/demo-shop';
import { approveInChromium, type BrowserUser, type ConsentSeen } from './browser.js';
import { formatCall, tracingFetch, type TracedCall } from './trace.js';

export const AGENT_NAME = 'Shopping Assistant';
export const DEVELOPER = { name: 'Example Corp', id: 'example-corp' };
export const PURPOSE = 'AI Shopping Agent';
/** The scopes of seed 002's agent. */
export const SCOPES = ['products:read', 'cart:write', 'orders:write'];

export interface DemoOptions {
  /** Where the story is printed, one line at a time (default console.log). */
  out?: (line: string) => void;
  /** Wait for a person to approve in their own browser instead of driving headless Chromium. */
  interactive?: boolean;
  /** Who logs in at the shop (default alice). */
  user?: BrowserUser;
  chromiumPath?: string;
  /** Interval of the token polls while waiting for a person (default 2000 ms). */
  pollIntervalMs?: number;
  /** Stops waiting (Ctrl-C). */
  signal?: AbortSignal;
}

export interface DemoStep {
  number: number;
  title: string;
  calls: TracedCall[];
}

export interface DemoResult {
  shopUrl: string;
  agentId: string;
  steps: DemoStep[];
  /** What the browser saw (headless runs only). */
  consent: ConsentSeen | null;
  effectiveScopes: string[];
  order: Order;
  /** The user's orders as the shop's database has them at the end. */
  ordersInShop: Order[];
  /** The answer to the revoked token: 401 TOKEN_REVOKED. */
  afterRevoke: { status: number; code: string };
}

const STEPS: Record<number, [string, string]> = {
  1: [
    'Discovery — “What can I connect to?”',
    'The agent fetches the public document that names the service, its scopes and its endpoints.',
  ],
  2: [
    'Registration — “Can I use your service?”',
    'The agent presents a signed attestation; the shop fetches its identity document, checks the signature and approves scopes.',
  ],
  3: [
    'Authorization — “Let me ask the user”',
    'The agent asks for a consent URL to send the user to (no redirect URI: it will poll).',
  ],
  4: [
    'Consent — the user approves in their browser',
    'The user logs in at the shop (never at the agent) and approves the requested scopes.',
  ],
  5: [
    'Token exchange — “Here’s your scoped access”',
    'The agent gets a token for what the shop approved ∩ what the user consented ∩ what it requested.',
  ],
  6: [
    'Use the API — “Now I can shop”',
    'Bearer token + X-ATH-Agent-ID on the shop’s own API (native mode: api_base, no proxy).',
  ],
  7: ['Revoke — “I’m done”', 'The agent revokes its token; the shop refuses it from now on.'],
};

const isPendingPoll = (call: TracedCall): boolean =>
  call.url.endsWith('/ath/token') &&
  (call.responseBody as { details?: { reason?: string } } | undefined)?.details?.reason ===
    'authorization_pending';

/** Runs the whole story and closes everything it started, also on failure. */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const out = options.out ?? ((line: string) => console.log(line));
  const user = options.user ?? {
    username: 'alice',
    password: DEMO_USERS['alice']?.password ?? 'alice-password',
  };
  const steps: DemoStep[] = [];
  const step = (number: number): void => {
    const [title, explanation] = STEPS[number]!;
    steps.push({ number, title, calls: [] });
    out('');
    out(`Step ${number}: ${title}`);
    out(`  ${explanation}`);
  };
  const current = (): DemoStep | undefined => steps.at(-1);
  let pendingPolls = 0;
  const fetch = tracingFetch((call) => {
    if (isPendingPoll(call)) {
      current()?.calls.push(call);
      // The first poll is shown; the rest (one per pollIntervalMs while a person decides) are counted.
      if (++pendingPolls === 1) {
        out(`  ${call.method} ${call.url} → ${call.status} authorization_pending (not yet: polling)`);
      }
      return;
    }
    // In interactive runs the successful poll is where step 5 starts.
    if (call.url.endsWith('/ath/token') && call.status === 200 && current()?.number === 4) {
      if (pendingPolls > 1) out(`  (${pendingPolls} polls in all answered authorization_pending)`);
      step(5);
    }
    current()?.calls.push(call);
    out('');
    out(formatCall(call));
  });

  const cleanups: (() => Promise<void> | void)[] = [];
  try {
    const dataDir = mkdtempSync(join(tmpdir(), 'ath-shopping-assistant-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));

    // The agent's identity: an ES256 key and the identity document at its agent_id URL.
    const key = await generateAgentKey();
    const identity = await serveIdentityDocument({ key, name: AGENT_NAME, developer: DEVELOPER });
    cleanups.push(() => identity.close());
    identity.server.on('request', (req: { method?: string }) => {
      out(
        `  (the shop fetched ${req.method ?? 'GET'} ${identity.agentId} — the agent's identity document with its public key)`,
      );
    });
    const agent = { agentId: identity.agentId, privateKey: key.privateKey, kid: key.kid };

    const shop = await createShop({
      dataDir,
      logger: false,
      allowInsecureAgents: [new URL(identity.agentId).host],
    });
    cleanups.push(() => shop.close());
    out(`ATH Shop is running at ${shop.url} (data in ${dataDir})`);
    out(`${AGENT_NAME}: identity document served at ${identity.agentId}`);

    step(1);
    const client = await NativeClient.discover(shop.url, {
      agent,
      fetch,
      ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
    });

    step(2);
    const { credentials } = await client.register({ developer: DEVELOPER, scopes: SCOPES, purpose: PURPOSE });
    if (credentials.agentStatus !== 'approved')
      await client.waitForApproval({ ...(options.signal ? { signal: options.signal } : {}) });

    step(3);
    const pending = await client.authorize({ scopes: SCOPES });

    step(4);
    let consent: ConsentSeen | null = null;
    let token: StoredToken;
    if (options.interactive) {
      out('');
      out('  Open this URL in your browser, log in and approve:');
      out(`    ${pending.authorizationUrl}`);
      out(`  Demo login: ${user.username} / ${user.password}. Waiting for your decision (Ctrl-C to stop)…`);
      out('');
      token = await client.waitForToken(pending, { ...(options.signal ? { signal: options.signal } : {}) });
    } else {
      out('');
      out(`  Headless Chromium plays the user ${user.username}:`);
      consent = await approveInChromium(
        pending.authorizationUrl,
        user,
        options.chromiumPath ? { executablePath: options.chromiumPath } : {},
      );
      for (const line of consent.navigations) out(`    browser: ${line}`);
      out(`  The consent page said: “${consent.heading}”`);
      out(
        `  Offered scopes: ${consent.scopes.join(', ')} → the user clicked “Approve selected”; the shop answered “${consent.outcome}”.`,
      );
      step(5);
      token = await client.waitForToken(pending, { ...(options.signal ? { signal: options.signal } : {}) });
    }
    out('');
    out(
      `  Granted: ${token.scopes.join(' ')} (expires in ${Math.round((token.expiresAt - Date.now()) / 1000)} s)`,
    );

    step(6);
    const { products } = await client.json<{ products: Product[] }>('GET', '/products');
    const pick = products[0];
    if (!pick) throw new Error('the shop has no products');
    out(`  → the assistant picks “${pick.name}” (${(pick.price_cents / 100).toFixed(2)})`);
    await client.json('POST', '/cart', { product_id: pick.id, quantity: 2 });
    const { order } = await client.json<{ order: Order }>('POST', '/orders', {});
    out(`  → order #${order.id} placed, total ${(order.total_cents / 100).toFixed(2)}`);

    step(7);
    await client.revoke();
    out('');
    out('  Proof: the same token on the same API call after revocation:');
    let afterRevoke = { status: 0, code: '' };
    try {
      await processProtectedResourceResponse(
        await protectedResourceRequest(
          `${client.apiBase}/products`,
          token.accessToken,
          agent.agentId,
          { method: 'GET' },
          { fetch },
        ),
      );
    } catch (err) {
      if (!(err instanceof AthClientError)) throw err;
      afterRevoke = { status: err.status ?? 0, code: err.code };
    }
    if (afterRevoke.code !== 'TOKEN_REVOKED')
      throw new Error(
        `the revoked token was not refused with TOKEN_REVOKED (${JSON.stringify(afterRevoke)})`,
      );
    out(`  → ${afterRevoke.status} ${afterRevoke.code}: the token is dead.`);

    const ordersInShop = shop.db.orders(user.username);
    out('');
    out(
      `Done: ${steps.reduce((n, s) => n + s.calls.length, 0)} HTTP calls by the agent; ${user.username} has ${ordersInShop.length} order(s) at the shop.`,
    );
    return {
      shopUrl: shop.url,
      agentId: agent.agentId,
      steps,
      consent,
      effectiveScopes: token.scopes,
      order,
      ordersInShop,
      afterRevoke,
    };
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}
