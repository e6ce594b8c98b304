import type { Adapter, AdapterPayload } from 'oidc-provider';

interface Entry {
  payload: AdapterPayload;
  /** Epoch milliseconds; `Infinity` when stored without an expiry. */
  expiresAt: number;
}

/** The models whose artifacts belong to a grant (revoked together by `revokeByGrantId`). */
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

/**
 * An in-memory oidc-provider adapter, one store per service instance (oidc-provider's own memory
 * adapter is a process-wide singleton and announces itself on every start). Everything is lost on
 * restart, which is what a demo wants. Expired entries are dropped on access and by a periodic sweep.
 */
export class MemoryStore {
  readonly #entries = new Map<string, Entry>();
  readonly #byUid = new Map<string, string>();
  readonly #byUserCode = new Map<string, string>();
  readonly #byGrant = new Map<string, Set<string>>();
  readonly #sweep: NodeJS.Timeout;

  constructor(sweepIntervalMs = 60_000) {
    this.#sweep = setInterval(() => this.#purgeExpired(), sweepIntervalMs);
    this.#sweep.unref();
  }

  /** A factory in the shape oidc-provider's `adapter` option accepts (called with a model name). */
  adapterFactory(): (model: string) => Adapter {
    return (model: string) => this.#adapterFor(model);
  }

  close(): void {
    clearInterval(this.#sweep);
    this.#entries.clear();
    this.#byUid.clear();
    this.#byUserCode.clear();
    this.#byGrant.clear();
  }

  #get(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry && entry.expiresAt <= Date.now()) {
      this.#delete(key);
      return undefined;
    }
    return entry;
  }

  #delete(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    const { uid, userCode, grantId } = entry.payload;
    if (uid && this.#byUid.get(uid) === key) this.#byUid.delete(uid);
    if (userCode && this.#byUserCode.get(userCode) === key) this.#byUserCode.delete(userCode);
    if (grantId) {
      const members = this.#byGrant.get(grantId);
      members?.delete(key);
      if (members?.size === 0) this.#byGrant.delete(grantId);
    }
  }

  #purgeExpired(): void {
    const now = Date.now();
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.#delete(key);
  }

  #adapterFor(model: string): Adapter {
    const keyFor = (id: string) => `${model}:${id}`;
    const find = (key: string | undefined): AdapterPayload | undefined => {
      if (key === undefined) return undefined;
      const entry = this.#get(key);
      return entry ? structuredClone(entry.payload) : undefined;
    };
    return {
      upsert: (id, payload, expiresIn) => {
        const key = keyFor(id);
        this.#delete(key);
        const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
        this.#entries.set(key, { payload: structuredClone(payload), expiresAt });
        if (payload.uid) this.#byUid.set(payload.uid, key);
        if (payload.userCode) this.#byUserCode.set(payload.userCode, key);
        if (payload.grantId && GRANTABLE.has(model)) {
          let members = this.#byGrant.get(payload.grantId);
          if (!members) this.#byGrant.set(payload.grantId, (members = new Set()));
          members.add(key);
        }
        return Promise.resolve();
      },
      find: (id) => Promise.resolve(find(keyFor(id))),
      findByUid: (uid) => Promise.resolve(find(this.#byUid.get(uid))),
      findByUserCode: (userCode) => Promise.resolve(find(this.#byUserCode.get(userCode))),
      consume: (id) => {
        const entry = this.#get(keyFor(id));
        if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
        return Promise.resolve();
      },
      destroy: (id) => {
        this.#delete(keyFor(id));
        return Promise.resolve();
      },
      revokeByGrantId: (grantId) => {
        for (const key of [...(this.#byGrant.get(grantId) ?? [])]) this.#delete(key);
        this.#byGrant.delete(grantId);
        return Promise.resolve();
      },
    };
  }
}
