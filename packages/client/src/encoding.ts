/** base64 / base64url without Buffer, so the main entry runs wherever fetch and Web Crypto do. */
export function toBase64(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function fromBase64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function base64url(bytes: Uint8Array): string {
  return toBase64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** `n` bytes from the platform CSPRNG, base64url (default 32 bytes = 256 bits). */
export function randomToken(bytes = 32): string {
  const buf = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(buf);
  return base64url(buf);
}

/** An HTTP Basic `Authorization` value for client credentials (AMB-07). */
export function basicAuthorization(id: string, secret: string): string {
  return `Basic ${toBase64(new TextEncoder().encode(`${id}:${secret}`))}`;
}
