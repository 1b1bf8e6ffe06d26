/**
 * Commands that expect an answer (`ack`, `pong`, `sync.result`, or an `error` with the same
 * `ref`): each gets a ref, a timeout, and fails when its socket closes, since an
 * answer can only come on the socket the command went out on. An edit or a delete is
 * refused by the persister after the edge's `ack`, so it waits past the `ack` for its
 * event (or the late `error`).
 * @module
 */

import type { AckFrame, Command, ErrorCode, ErrorFrame, PongFrame, ServerFrame, SyncResultFrame } from "./protocol.js";

/** A command the server refused, or that got no answer. */
export class CommandError extends Error {
  constructor(
    readonly code: ErrorCode | "disconnected" | "timeout",
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "CommandError";
  }
}

/** The frames that answer a command. */
export type Answer = AckFrame | PongFrame | SyncResultFrame;

interface Waiting {
  resolve: (answer: Answer) => void;
  reject: (error: CommandError) => void;
  timer: ReturnType<typeof setTimeout>;
  /** Past the `ack`, the frame that shows the command took effect. */
  effect?: (frame: ServerFrame) => boolean;
  acked?: AckFrame;
}

/** Commands waiting for their answer, by ref. */
export class PendingCommands {
  private next = 0;
  private readonly waiting = new Map<string, Waiting>();

  constructor(private readonly timeoutMs: number) {}

  /**
   * Sends `command` with a new ref through `send` and waits for its answer; with
   * `effect`, also for the first frame it accepts after (or before) the `ack`.
   */
  request<T extends Answer>(
    command: Command,
    send: (command: Command) => boolean,
    effect?: (frame: ServerFrame) => boolean,
  ): Promise<T> {
    this.next += 1;
    const ref = `c${this.next}`;
    return new Promise<T>((resolve, reject) => {
      if (!send({ ...command, ref })) {
        reject(new CommandError("disconnected", `${command.type}: not connected`));
        return;
      }
      const timer = setTimeout(() => {
        this.waiting.delete(ref);
        reject(new CommandError("timeout", `${command.type}: no answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      const waiting: Waiting = { resolve: resolve as (answer: Answer) => void, reject, timer };
      if (effect) waiting.effect = effect;
      this.waiting.set(ref, waiting);
    });
  }

  /** Offers a frame to the commands waiting for their effect. */
  observe(frame: ServerFrame): void {
    for (const [ref, waiting] of this.waiting) {
      if (!waiting.effect?.(frame)) continue;
      // Seen before its ack: the ack settles it.
      waiting.effect = undefined;
      if (waiting.acked) this.settle(ref, waiting, waiting.acked);
    }
  }

  /** Settles the command an answer belongs to; false when it is nobody's. */
  answer(frame: Answer | ErrorFrame): boolean {
    const waiting = frame.ref === null ? undefined : this.waiting.get(frame.ref);
    if (!waiting || frame.ref === null) return false;
    if (frame.type === "ack" && waiting.effect) waiting.acked = frame;
    else this.settle(frame.ref, waiting, frame);
    return true;
  }

  private settle(ref: string, waiting: Waiting, frame: Answer | ErrorFrame): void {
    this.waiting.delete(ref);
    clearTimeout(waiting.timer);
    if (frame.type === "error") waiting.reject(new CommandError(frame.code, frame.message, frame.retry_after_ms));
    else waiting.resolve(frame);
  }

  /** The socket closed: nothing pending will be answered. */
  failAll(): void {
    for (const waiting of this.waiting.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(new CommandError("disconnected", "the connection closed before the answer"));
    }
    this.waiting.clear();
  }
}
