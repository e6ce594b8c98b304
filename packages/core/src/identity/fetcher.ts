/** What the identity resolver needs from the network: one GET, no redirects, a capped body. */
export interface FetchedDocument {
  status: number;
  /** The raw Content-Type header, or null when absent. */
  contentType: string | null;
  /** The body decoded as UTF-8 (already bounded by the fetcher's size cap). */
  body: string;
}

/**
 * Fetches an identity document. Implementations must throw `AthError('INVALID_ATTESTATION')`
 * (see {@link attestationFailure}) for transport failures; the resolver wraps anything else.
 */
export interface DocumentFetcher {
  fetch(url: URL, signal?: AbortSignal): Promise<FetchedDocument>;
  /** True when plain http is allowed for this URL (test/dev allow-list). Absent means never. */
  isInsecureAllowed?(url: URL): boolean;
}
