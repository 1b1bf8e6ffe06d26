/**
 * Typing indicators both ways. Outgoing: a `start` at most every few seconds per chat
 * while the user keeps typing (the server drops repeats within a second anyway, and a
 * `start` lasts 6 s), a `stop` only after a `start`. Incoming: who is typing per chat,
 * each `start` expiring after 6 s unless renewed, as the protocol says; a message from
 * the typist ends it too.
 * @module
 */

/** How long a `start` lasts without a renewal (the protocol's 6 s). */
export const TYPING_TTL_MS = 6000;

/** How often a user who keeps typing renews `start`: well inside the 6 s. */
export const TYPING_RENEW_MS = 3000;

/** Decides which typing commands to send. */
export class TypingSender {
  private readonly lastStart = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Whether a keystroke in `chatId` should send `start`. */
  shouldStart(chatId: string): boolean {
    const last = this.lastStart.get(chatId);
    const now = this.now();
    if (last !== undefined && now - last < TYPING_RENEW_MS) return false;
    this.lastStart.set(chatId, now);
    return true;
  }

  /** Whether `stop` should be sent (only after a `start`). */
  shouldStop(chatId: string): boolean {
    return this.lastStart.delete(chatId);
  }
}

/** Who is typing where, with the expiry applied. */
export class TypingState {
  private readonly timers = new Map<string, Map<string, ReturnType<typeof setTimeout>>>();

  /** `changed` hears the typists of a chat after every change. */
  constructor(private readonly changed: (chatId: string, userIds: string[]) => void) {}

  /** A `typing` event. */
  apply(chatId: string, userId: string, state: "start" | "stop"): void {
    let chat = this.timers.get(chatId);
    const had = chat?.has(userId) ?? false;
    clearTimeout(chat?.get(userId));
    if (state === "start") {
      if (!chat) {
        chat = new Map();
        this.timers.set(chatId, chat);
      }
      chat.set(
        userId,
        setTimeout(() => this.apply(chatId, userId, "stop"), TYPING_TTL_MS),
      );
      if (!had) this.changed(chatId, this.typists(chatId));
    } else if (had) {
      chat?.delete(userId);
      this.changed(chatId, this.typists(chatId));
    }
  }

  /** Users typing in a chat now. */
  typists(chatId: string): string[] {
    return [...(this.timers.get(chatId)?.keys() ?? [])].sort();
  }

  /** Forgets everything (the client closed). */
  clear(): void {
    for (const chat of this.timers.values()) for (const timer of chat.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
