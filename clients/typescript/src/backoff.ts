/**
 * Reconnect delays: exponential with jitter (each between half and all of its ceiling),
 * so that the clients of an edge that went away do not all come back at once.
 * @module
 */

/** How reconnect delays grow. */
export interface BackoffOptions {
  /** The first delay's upper bound, ms (default 250). */
  initialMs?: number;
  /** The largest delay, ms (default 30,000). */
  maxMs?: number;
  /** Growth per failed attempt (default 2). */
  factor?: number;
}

/** Counts failed attempts and draws the next delay. */
export class Backoff {
  private attempts = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;

  constructor(options: BackoffOptions = {}, private readonly random: () => number = Math.random) {
    this.initialMs = options.initialMs ?? 250;
    this.maxMs = options.maxMs ?? 30_000;
    this.factor = options.factor ?? 2;
  }

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempts);
    this.attempts += 1;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  /** Skips ahead, for close codes that say "not so soon" (4008, 4010). */
  penalise(steps: number): void {
    this.attempts += steps;
  }

  /** A connection that reached `hello` starts the count again. */
  reset(): void {
    this.attempts = 0;
  }
}
