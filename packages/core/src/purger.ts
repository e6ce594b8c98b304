import type { Clock } from './clock.js';
import type { PurgeCounts, Store } from './store.js';

/**
 * Deletes expired rows (jti, sessions, tokens, rate-limit windows) in the background. The timer is
 * unref'd so it never keeps a process alive, and a purge never overlaps the previous one.
 */
export function startPurger(
  store: Pick<Store, 'purgeExpired'>,
  options: { intervalMs?: number; clock?: Clock; onPurge?: (c: PurgeCounts) => void; onError?: (e: unknown) => void } = {},
): () => void {
  const now = () => (options.clock ?? { now: Date.now }).now();
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    store
      .purgeExpired(now())
      .then((c) => options.onPurge?.(c))
      .catch((e: unknown) => options.onError?.(e))
      .finally(() => (running = false));
  }, options.intervalMs ?? 60_000);
  (timer as { unref?: () => void }).unref?.();
  return () => clearInterval(timer);
}
