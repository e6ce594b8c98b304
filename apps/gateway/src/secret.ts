import { inspect } from 'node:util';

/**
 * A configuration value that must never be printed: JSON, `String()`, template literals and
 * `util.inspect` (so pino and console) all show a redacted form. Only `reveal()` gives the value.
 */
export class Secret {
  readonly #value: string;
  readonly #display: string;

  /** `display` replaces the value wherever it is shown (default `[redacted]`). */
  constructor(value: string, display = '[redacted]') {
    this.#value = value;
    this.#display = display;
  }

  reveal(): string {
    return this.#value;
  }

  toJSON(): string {
    return this.#display;
  }

  toString(): string {
    return this.#display;
  }

  [inspect.custom](): string {
    return `Secret(${this.#display})`;
  }
}

/** A URL with its password (and username) masked, for logs and serialized config. */
export function redactUrlCredentials(value: string): string {
  try {
    const url = new URL(value);
    if (!url.username && !url.password) return value;
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    // Not a URL we understand: show only the scheme.
    const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(value)?.[0];
    return scheme ? `${scheme}[redacted]` : '[redacted]';
  }
}
