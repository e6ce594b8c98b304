import { calculateJwkThumbprint, type JWK } from 'jose';

/**
 * How the service knows its users' keys (AMB-33): the key that signs pre-authorization credentials
 * and confirmations was enrolled by the user with the service, through the service's own login.
 * `userKeys` is the one required hook; `pushEndpoint` enables the push confirmation channel.
 */
export interface UserKeyDirectory {
  /** Public JWKs enrolled by `userDid`; empty when unknown. */
  userKeys(userDid: string): Promise<readonly JWK[]> | readonly JWK[];
  /** The user's enrolled device endpoint for step-6 pushes, or null. */
  pushEndpoint?(userDid: string): Promise<string | null> | string | null;
  /** Enrols a device key (and push endpoint) for a signed-in user; returns its kid. */
  enrol?(userDid: string, device: { publicKey: JWK; pushEndpoint?: string | null }): Promise<{ kid: string }>;
}

/** An in-memory directory (tests, demos). */
export class MemoryUserDirectory implements UserKeyDirectory {
  private readonly users = new Map<string, { keys: JWK[]; pushEndpoint: string | null }>();

  async enrol(
    userDid: string,
    device: { publicKey: JWK; pushEndpoint?: string | null },
  ): Promise<{ kid: string }> {
    const { kty, crv, x, y } = device.publicKey;
    const kid = device.publicKey.kid ?? (await calculateJwkThumbprint({ kty, crv, x, y }, 'sha256'));
    const entry = this.users.get(userDid) ?? { keys: [], pushEndpoint: null };
    entry.keys = [...entry.keys.filter((k) => k.kid !== kid), { kty, crv, x, y, kid }];
    if (device.pushEndpoint !== undefined) entry.pushEndpoint = device.pushEndpoint;
    this.users.set(userDid, entry);
    return { kid };
  }

  userKeys(userDid: string): readonly JWK[] {
    return this.users.get(userDid)?.keys ?? [];
  }

  pushEndpoint(userDid: string): string | null {
    return this.users.get(userDid)?.pushEndpoint ?? null;
  }
}
