import type { AbortTarget } from './proxy.js';

/**
 * Aborts an upstream request when the agent goes away. undici takes any object with
 * addEventListener/removeEventListener as a request signal; this one only keeps the listeners undici
 * adds (one per upstream attempt), so a proxied call allocates neither an EventEmitter nor an
 * AbortController for a signal that almost never fires.
 */
export class ClientGone implements AbortTarget {
  aborted = false;
  private first: (() => void) | null = null;
  private more: Array<() => void> | null = null;

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.first === null) this.first = listener;
    else (this.more ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    if (this.first === listener) this.first = null;
    else if (this.more) this.more = this.more.filter((l) => l !== listener);
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listeners = [this.first, ...(this.more ?? [])];
    this.first = null;
    this.more = null;
    for (const listener of listeners) listener?.();
  }
}
