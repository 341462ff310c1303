/**
 * The one clock shape: milliseconds since the epoch, like Date.now. Every component that
 * reads the time takes a Clock (jose's `currentDate`, cloudflared's `retry.Clock`), so the
 * 180-day renewal and the 85 s timeout are testable without waiting.
 */
export type Clock = () => number;

export const systemClock: Clock = Date.now;
