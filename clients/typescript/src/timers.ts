// Timers, and the retry delays of streams.

/** A pending call that can be cancelled. */
export interface Timer {
  cancel(): void;
}

/**
 * Call `callback` after `ms` milliseconds, unless cancelled first. A background timer (the
 * token refresh) does not keep a Node process alive by itself; a stream's reconnect does.
 */
export function startTimer(callback: () => void, ms: number, background = true): Timer {
  const handle = setTimeout(callback, Math.max(0, ms));
  if (background) (handle as unknown as { unref?: () => void }).unref?.();
  return { cancel: () => clearTimeout(handle) };
}

/** The delay before the `attempt`-th retry (0-based): exponential, capped, with jitter. */
export function backoff(attempt: number, initial: number, max: number): number {
  const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 16));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}
