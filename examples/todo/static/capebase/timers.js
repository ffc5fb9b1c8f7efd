// Timers, and the retry delays of streams.
/**
 * Call `callback` after `ms` milliseconds, unless cancelled first. A background timer (the
 * token refresh) does not keep a Node process alive by itself; a stream's reconnect does.
 */
export function startTimer(callback, ms, background = true) {
    const handle = setTimeout(callback, Math.max(0, ms));
    if (background)
        handle.unref?.();
    return { cancel: () => clearTimeout(handle) };
}
/** The delay before the `attempt`-th retry (0-based): exponential, capped, with jitter. */
export function backoff(attempt, initial, max) {
    const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 16));
    return ceiling / 2 + Math.random() * (ceiling / 2);
}
