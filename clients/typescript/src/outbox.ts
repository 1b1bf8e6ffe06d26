/**
 * Sends that are not stored yet. Each keeps its `client_msg_id` for life: the server
 * stores one message per (sender, chat, client_msg_id) and answers a repeat with the
 * original, so resending after any failure can neither duplicate nor lose a message.
 * An entry leaves only when its stored message is seen (live or in a `sync` answer) or
 * the server refuses it for good.
 * @module
 */

import type { ErrorCode, Message } from "./protocol.js";

/** A send waiting for its stored message. */
export interface PendingSend {
  chat_id: string;
  client_msg_id: string;
  text: string;
  reply_to: string | null;
  /** When `send()` was called (ms since the epoch). */
  queued_at: number;
}

/**
 * Where pending sends are kept between page loads (IndexedDB, say). `save` receives
 * the whole list after every change; `load` is called once, when the client starts.
 */
export interface OutboxStore {
  load(): Promise<PendingSend[]>;
  save(pending: PendingSend[]): Promise<void>;
}

/** A send the server refused for good (not a member, invalid text, too large). */
export class SendError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly pending: PendingSend,
  ) {
    super(message);
    this.name = "SendError";
  }
}

/** Codes after which resending cannot succeed. */
const FINAL: ReadonlySet<ErrorCode> = new Set(["invalid", "too_large", "not_found", "forbidden", "unauthorized"]);

/** Whether a refusal is final. */
export function isFinal(code: ErrorCode): boolean {
  return FINAL.has(code);
}

interface Waiter {
  resolve: (message: Message) => void;
  reject: (error: Error) => void;
}

/** The pending sends, in the order they were made. */
export class Outbox {
  private readonly pending = new Map<string, PendingSend>();
  private readonly waiters = new Map<string, Waiter>();
  private saving: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: OutboxStore | undefined,
    private readonly onSaveError: (error: unknown) => void = () => undefined,
  ) {}

  /** Loads what an earlier page left. */
  async load(): Promise<PendingSend[]> {
    const loaded = (await this.store?.load()) ?? [];
    for (const entry of loaded) this.pending.set(entry.client_msg_id, entry);
    return loaded;
  }

  /** Adds a send; the promise settles when it is stored or refused. */
  add(entry: PendingSend): Promise<Message> {
    this.pending.set(entry.client_msg_id, entry);
    this.persist();
    return this.wait(entry.client_msg_id);
  }

  /** A promise for a pending send (one loaded from the store, say). */
  wait(clientMsgId: string): Promise<Message> {
    return new Promise((resolve, reject) => {
      const previous = this.waiters.get(clientMsgId);
      this.waiters.set(clientMsgId, {
        resolve: (m) => {
          previous?.resolve(m);
          resolve(m);
        },
        reject: (e) => {
          previous?.reject(e);
          reject(e);
        },
      });
    });
  }

  /** The stored message of a send arrived; returns the entry it settled. */
  stored(message: Message): PendingSend | undefined {
    const entry = this.pending.get(message.client_msg_id);
    if (!entry || entry.chat_id !== message.chat_id) return undefined;
    this.pending.delete(message.client_msg_id);
    this.persist();
    this.waiters.get(message.client_msg_id)?.resolve(message);
    this.waiters.delete(message.client_msg_id);
    return entry;
  }

  /** The server refused a send for good. */
  refused(clientMsgId: string, code: ErrorCode, reason: string): PendingSend | undefined {
    const entry = this.pending.get(clientMsgId);
    if (!entry) return undefined;
    this.pending.delete(clientMsgId);
    this.persist();
    this.waiters.get(clientMsgId)?.reject(new SendError(code, reason, entry));
    this.waiters.delete(clientMsgId);
    return entry;
  }

  /** One pending send. */
  get(clientMsgId: string): PendingSend | undefined {
    return this.pending.get(clientMsgId);
  }

  /** Every pending send, oldest first. */
  list(): PendingSend[] {
    return [...this.pending.values()];
  }

  /** Resolves once every change so far is saved. */
  flushed(): Promise<void> {
    return this.saving;
  }

  private persist(): void {
    if (!this.store) return;
    const snapshot = this.list();
    const store = this.store;
    // Saves run one after another, so an older list never overwrites a newer one.
    this.saving = this.saving.then(() => store.save(snapshot)).catch(this.onSaveError);
  }
}
