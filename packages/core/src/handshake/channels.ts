import type { AuthorizationConfirmationRequest } from '@athkit/schemas';

/** One step-6 delivery: the signed message, to whom, and the browser fallback URL. */
export interface ConfirmationTarget {
  userDid: string;
  message: AuthorizationConfirmationRequest;
  /** The consent page (browser variant of step 6). */
  authorizationUrl: string;
}

/**
 * How steps 6-7 reach the user, never through the agent (S/server security). The browser channel
 * is the existing native consent page + callback; the push channel sends a signed webhook to the
 * user's enrolled device, which answers POST /ath/handshake/{id}/confirmation with a user signature.
 */
export interface ConfirmationChannel {
  readonly kind: 'push' | 'browser';
  /** Whether this channel can reach `userDid` now. */
  available(userDid: string): Promise<boolean>;
  /** Sends the request; a rejection makes the service fall back to the next channel. */
  deliver(target: ConfirmationTarget): Promise<void>;
}

/** The consent page: nothing is sent; `notify` may tell the user out of band (e-mail, app) where to go. */
export class BrowserConfirmationChannel implements ConfirmationChannel {
  readonly kind = 'browser' as const;
  constructor(private readonly notify?: (target: ConfirmationTarget) => void | Promise<void>) {}
  available(): Promise<boolean> {
    return Promise.resolve(true);
  }
  async deliver(target: ConfirmationTarget): Promise<void> {
    await this.notify?.(target);
  }
}

export interface PushChannelOptions {
  /** The device endpoint of a user, or null (e.g. UserKeyDirectory.pushEndpoint). */
  endpoint: (userDid: string) => Promise<string | null> | string | null;
  fetch?: typeof globalThis.fetch;
  /** Default 5000 ms. */
  timeoutMs?: number;
}

/**
 * A signed webhook: `POST <device endpoint>` with the AuthorizationConfirmationRequest as JSON (its
 * `signature` member is the server's JWS over the rest, verifiable with ath-app.json `server_jwks`).
 * No redirects are followed; any non-2xx answer is a failed delivery.
 */
export class PushConfirmationChannel implements ConfirmationChannel {
  readonly kind = 'push' as const;
  private readonly fetchImpl: typeof globalThis.fetch;
  private readonly timeoutMs: number;
  constructor(private readonly options: PushChannelOptions) {
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.timeoutMs = options.timeoutMs ?? 5000;
  }
  async available(userDid: string): Promise<boolean> {
    return (await this.options.endpoint(userDid)) !== null;
  }
  async deliver(target: ConfirmationTarget): Promise<void> {
    const endpoint = await this.options.endpoint(target.userDid);
    if (endpoint === null) throw new Error('no device endpoint enrolled');
    const res = await this.fetchImpl(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(target.message),
      redirect: 'error',
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    await res.arrayBuffer().catch(() => undefined);
    if (!res.ok) throw new Error(`device endpoint answered ${res.status}`);
  }
}
