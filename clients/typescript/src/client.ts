/**
 * `ChatClient`: the SDK's one entry point. It owns the connection, the chat state, the
 * outbox, typing and presence, routes every server frame to them, and resumes after
 * every reconnect (see resume.ts) before it sends what the outbox holds.
 * @module
 */

import type { BackoffOptions } from "./backoff.js";
import { type Answer, PendingCommands } from "./commands.js";
import { Connection } from "./connection.js";
import { Emitter } from "./emitter.js";
import { Outbox, type OutboxStore, type PendingSend, SendError, isFinal } from "./outbox.js";
import {
  type AckFrame,
  type Chat,
  type ChatEvent,
  type ChatListItem,
  type ChatMode,
  type ErrorFrame,
  type HelloFrame,
  type Message,
  OPEN_MODE,
  type Page,
  type PresenceEvent,
  type ReadEvent,
  type ReportReason,
  type ServerFrame,
  type SyncResultFrame,
} from "./protocol.js";
import { type HistoryQuery, Rest } from "./rest.js";
import { resume } from "./resume.js";
import { type SocketFactory, defaultSocketFactory } from "./socket.js";
import { ChatEntry, type ChatView } from "./state.js";
import { TypingSender, TypingState } from "./typing.js";

/** How to reach the service and who the user is. */
export interface ClientOptions {
  /** Edge WebSocket URL(s), e.g. `wss://chat.example.edu/ws`; after a 1001 the next is tried. */
  url: string | string[];
  /** The api's base URL, e.g. `https://chat.example.edu` (routes start with `/api`). */
  apiUrl: string;
  /** Returns a valid token; called for every dial, every `token.expiring` and REST call. */
  token: () => string | Promise<string>;
  /** Keeps pending sends across page loads (IndexedDB, say). */
  outboxStore?: OutboxStore;
  /** Builds sockets; the global `WebSocket`, or `ws` on Node 20, by default. */
  socketFactory?: SocketFactory;
  /** The `fetch` for REST calls; the global one by default. */
  fetch?: typeof fetch;
  /** Reconnect delays. */
  backoff?: BackoffOptions;
  /** How long a command waits for its answer (15 s). */
  commandTimeoutMs?: number;
}

/** What a message event says happened. */
export type MessageChange = "created" | "edited" | "deleted";

/** Events of a `ChatClient`. */
export interface ClientEvents {
  /** A socket is open and authenticated. */
  connected: HelloFrame;
  /** A socket closed; `retryInMs` says when the next is dialled. */
  disconnected: { code: number; reason: string; retryInMs?: number };
  /** Resume finished on the current socket: the state is complete. */
  synced: undefined;
  /** A message was created, edited or deleted (live, synced or paged in). */
  message: { chatId: string; message: Message; change: MessageChange };
  /** A chat's view changed (title, members, unread count, read mark, last seq). */
  chat: ChatView;
  /** The user left or was removed from a chat. */
  chatRemoved: string;
  /** The typists of a chat changed. */
  typing: { chatId: string; userIds: string[] };
  /** A watched user's presence. */
  presence: PresenceEvent;
  /** A member's read mark moved. */
  read: ReadEvent;
  /** A send was stored (also the sends of an earlier page, loaded from the outbox store). */
  sent: Message;
  /** The server refused a send for good; it left the outbox. */
  sendFailed: SendError;
  /** An `error` that answers no command the client waits for. */
  error: ErrorFrame;
  /** The token provider failed. */
  authError: Error;
  /** Every frame the server sent, as received. */
  frame: ServerFrame;
}

/** The prefix of the refs of sends (a `client_msg_id` may be too long to be a ref). */
const SEND_REF = "s:";

/** Delay before resending after `unavailable` or `internal`. */
const RESEND_AFTER_MS = 1000;

/** A chat the client learnt of from an event that does not carry it. */
function placeholder(id: string): Chat {
  return {
    id,
    type: "group",
    title: null,
    created_by: "",
    created_at: "",
    updated_at: "",
    last_seq: 0,
    last_message: null,
    participants: [],
    external_id: null,
    history_visibility: "all",
    mode: OPEN_MODE,
  };
}

/** A real-time chat client: state, sends and live signals for one user. */
export class ChatClient extends Emitter<ClientEvents> {
  /** The REST API, with the client's token. */
  readonly api: Rest;
  private readonly connection: Connection;
  private readonly entries = new Map<string, ChatEntry>();
  private readonly outbox: Outbox;
  private readonly commands: PendingCommands;
  private readonly typingOut = new TypingSender();
  private readonly typingIn: TypingState;
  private readonly presenceOf = new Map<string, PresenceEvent>();
  private watched: string[] = [];
  private me = "";
  /** Counts sockets, so a resume knows whether its socket is still the current one. */
  private generation = 0;
  private resumed = false;
  private resuming = false;
  private closedForGood = false;
  /** The outbox store's sends, loaded once, before anything is added to it. */
  private loading: Promise<void> | undefined;
  private connecting: Promise<void> | undefined;
  /** Ref → `client_msg_id` of every send transmitted. */
  private readonly sendRefs = new Map<string, string>();
  private sendCount = 0;

  constructor(private readonly options: ClientOptions) {
    super();
    const token = async () => options.token();
    this.api = new Rest(options.apiUrl.replace(/\/$/, ""), token, options.fetch);
    this.connection = new Connection({
      urls: Array.isArray(options.url) ? options.url : [options.url],
      token,
      sockets: () => (options.socketFactory ? Promise.resolve(options.socketFactory) : defaultSocketFactory()),
      ...(options.backoff ? { backoff: options.backoff } : {}),
    });
    this.outbox = new Outbox(options.outboxStore, (error) => this.emit("authError", asError(error)));
    this.commands = new PendingCommands(options.commandTimeoutMs ?? 15_000);
    this.typingIn = new TypingState((chatId, userIds) => this.emit("typing", { chatId, userIds }));
    this.connection.on("open", (hello) => this.opened(hello));
    this.connection.on("frame", (frame) => this.receive(frame));
    this.connection.on("close", (close) => this.closed(close));
    this.connection.on("authError", (error) => this.emit("authError", error));
  }

  /** Connects (and keeps reconnecting); resolves once the first resume is complete. */
  connect(): Promise<void> {
    this.connecting ??= (async () => {
      await this.loaded();
      if (this.closedForGood) return;
      const synced = this.once("synced");
      this.connection.start();
      await synced;
    })();
    return this.connecting;
  }

  private loaded(): Promise<void> {
    // Sends of an earlier page are settled silently: nobody holds their promises any more.
    this.loading ??= this.outbox.load().then((loaded) => {
      for (const entry of loaded) void this.outbox.wait(entry.client_msg_id).catch(() => undefined);
    });
    return this.loading;
  }

  /** Closes the socket for good (the client cannot connect again); pending sends stay in the outbox store. */
  close(): void {
    this.closedForGood = true;
    this.connection.stop();
    this.commands.failAll();
    this.typingIn.clear();
    this.resumed = false;
  }

  /** The user id, once connected. */
  get userId(): string {
    return this.me;
  }

  /** Whether the state is complete on an open socket. */
  get isSynced(): boolean {
    return this.resumed && this.connection.isReady;
  }

  /** The user's chats, most recent activity first. */
  chats(): ChatView[] {
    const activity = (view: ChatView) => view.chat.last_message?.created_at ?? view.chat.updated_at;
    return [...this.entries.values()]
      .map((entry) => entry.view(this.me))
      .sort((a, b) => (activity(a) < activity(b) ? 1 : -1));
  }

  /** One chat, if the user belongs to it. */
  chat(chatId: string): ChatView | undefined {
    return this.entries.get(chatId)?.view(this.me);
  }

  /** The messages held of a chat, in seq order (tombstones included). */
  messages(chatId: string): Message[] {
    return this.entries.get(chatId)?.sortedMessages() ?? [];
  }

  /** Sends not stored yet, oldest first. */
  pendingSends(): PendingSend[] {
    return this.outbox.list();
  }

  /**
   * Sends a message; resolves with the stored message. The send is kept in the outbox
   * (and its store) until then and resent with the same `client_msg_id` after every
   * reconnect; rejects with `SendError` only when the server refuses it for good.
   */
  async send(chatId: string, text: string, options: { replyTo?: string; clientMsgId?: string } = {}): Promise<Message> {
    await this.loaded();
    const entry: PendingSend = {
      chat_id: chatId,
      client_msg_id: options.clientMsgId ?? newClientMsgId(),
      text,
      reply_to: options.replyTo ?? null,
      queued_at: Date.now(),
    };
    const stored = this.outbox.add(entry);
    await this.outbox.flushed();
    if (this.isSynced) this.transmit(entry);
    return stored;
  }

  /**
   * Changes a message's text; resolves when the edit is stored (its `msg.edited`
   * arrived), rejects with `CommandError` when it is refused (`forbidden`, `conflict`).
   */
  async edit(chatId: string, messageId: string, text: string): Promise<void> {
    await this.request<AckFrame>(
      { type: "msg.edit", chat_id: chatId, message_id: messageId, text },
      (f) => f.type === "msg.edited" && f.chat_id === chatId && f.message.id === messageId && f.message.text === text,
    );
  }

  /**
   * Changes the chat's mode (owners, admins, platform admins): who posts, slow mode,
   * frozen; fields left out keep their value. Resolves when the change is stored,
   * rejects when refused.
   */
  async moderate(chatId: string, change: Partial<ChatMode>): Promise<void> {
    await this.request<AckFrame>(
      { type: "chat.moderate", chat_id: chatId, ...change },
      (f) => f.type === "chat.moderated" && f.chat_id === chatId,
    );
  }

  /** Mutes a member until `until`, or unmutes them with `null`; resolves when stored. */
  async mute(chatId: string, userId: string, until: Date | string | null): Promise<void> {
    const at = until instanceof Date ? until.toISOString() : until;
    await this.request<AckFrame>(
      { type: "member.mute", chat_id: chatId, user_id: userId, until: at },
      (f) => f.type === "member.muted" && f.chat_id === chatId && f.user_id === userId,
    );
  }

  /**
   * Reports a message to the moderators, once per reporter and message (reporting it
   * again answers the first report). Resolves when the report is accepted; a refusal
   * (not a member, the reporter's own message, a deleted one) arrives as an `error`
   * frame with the command's `ref`.
   */
  async report(chatId: string, messageId: string, reason: ReportReason, note?: string): Promise<void> {
    await this.request<AckFrame>({
      type: "msg.report",
      chat_id: chatId,
      message_id: messageId,
      reason,
      ...(note === undefined ? {} : { note }),
    });
  }

  /** Deletes a message; resolves when the tombstone is stored, rejects when refused. */
  async delete(chatId: string, messageId: string): Promise<void> {
    // A repeated delete is answered but makes no event.
    if (this.entries.get(chatId)?.messages.get(messageId)?.deleted_at) return;
    await this.request<AckFrame>(
      { type: "msg.delete", chat_id: chatId, message_id: messageId },
      (f) => f.type === "msg.deleted" && f.chat_id === chatId && f.message_id === messageId,
    );
  }

  /** Moves the read mark (to the chat's last seq by default). */
  async markRead(chatId: string, upToSeq?: number): Promise<void> {
    const entry = this.entries.get(chatId);
    const seq = upToSeq ?? entry?.lastSeq ?? 0;
    await this.request<AckFrame>({ type: "read", chat_id: chatId, up_to_seq: seq });
    if (entry?.markRead(Math.min(seq, entry.lastSeq))) this.changed(entry);
  }

  /** Call on every keystroke: sends `start` now and then, as the protocol wants. */
  typing(chatId: string): void {
    if (this.typingOut.shouldStart(chatId)) this.connection.send({ type: "typing", chat_id: chatId, state: "start" });
  }

  /** The user stopped typing (sent the message, cleared the field). */
  stopTyping(chatId: string): void {
    if (this.typingOut.shouldStop(chatId)) this.connection.send({ type: "typing", chat_id: chatId, state: "stop" });
  }

  /** Who is typing in a chat now (`start`s expire after 6 s). */
  typists(chatId: string): string[] {
    return this.typingIn.typists(chatId);
  }

  /** Watches these users' presence (replaces the set; renewed after every reconnect). */
  watchPresence(userIds: string[]): void {
    this.watched = [...userIds];
    this.connection.send({ type: "presence.watch", user_ids: this.watched });
  }

  /** The last presence heard of a watched user. */
  presence(userId: string): PresenceEvent | undefined {
    return this.presenceOf.get(userId);
  }

  /** A page of history over REST; its messages join the state. */
  async history(chatId: string, query: HistoryQuery = {}): Promise<Page<Message>> {
    const page = await this.api.history(chatId, query);
    const entry = this.entries.get(chatId);
    if (entry) for (const message of page.items) this.applyMessage(entry, message, "created");
    return page;
  }

  /** Drops the socket as a network failure would; the client reconnects and resumes. */
  reconnect(): void {
    this.connection.drop();
  }

  /** Round trip to the edge, ms. */
  async ping(): Promise<number> {
    const started = Date.now();
    await this.request({ type: "ping" });
    return Date.now() - started;
  }

  private request<T extends Answer>(
    command: Parameters<Connection["send"]>[0],
    effect?: (frame: ServerFrame) => boolean,
  ): Promise<T> {
    return this.commands.request<T>(command, (c) => this.connection.send(c), effect);
  }

  private opened(hello: HelloFrame): void {
    this.me = hello.user_id;
    this.generation += 1;
    this.resumed = false;
    this.emit("connected", hello);
    if (this.watched.length > 0) this.connection.send({ type: "presence.watch", user_ids: this.watched });
    void this.runResume();
  }

  private async runResume(): Promise<void> {
    if (this.resuming) return;
    this.resuming = true;
    const generation = this.generation;
    try {
      let done = await this.resumeOnce(generation);
      while (done && [...this.entries.values()].some((e) => !e.inSync)) done = await this.resumeOnce(generation);
      if (!done) return;
      this.resumed = true;
      for (const pending of this.outbox.list()) this.transmit(pending);
      this.emit("synced", undefined);
    } catch {
      // REST or sync failed on this socket: dial again, which resumes again.
      if (this.generation === generation) this.connection.drop();
    } finally {
      this.resuming = false;
      // A socket that opened while this one resumed needs its own resume.
      if (this.generation !== generation && this.connection.isReady) void this.runResume();
    }
  }

  private resumeOnce(generation: number): Promise<boolean> {
    return resume({
      listChats: () => this.api.allChats(),
      sync: (chats) => this.request<SyncResultFrame>({ type: "sync", chats }),
      applyList: (items) => this.applyList(items),
      applySync: (answer) => this.applySync(answer),
      cursors: () => new Map([...this.entries].map(([id, e]) => [id, e.syncedThrough])),
      current: () => this.generation === generation && this.connection.isReady,
    });
  }

  private applyList(items: ChatListItem[]): void {
    for (const item of items) {
      const { unread_count: _unread, last_read_seq, my_role: _role, ...chat } = item;
      let entry = this.entries.get(item.id);
      if (!entry) {
        entry = new ChatEntry(chat, last_read_seq);
        this.entries.set(item.id, entry);
      }
      entry.snapshot(chat);
      entry.markRead(last_read_seq);
      this.changed(entry);
    }
  }

  private applySync(answer: SyncResultFrame): boolean {
    for (const id of answer.removed_chats) this.removeChat(id);
    for (const [id, changes] of Object.entries(answer.chats)) {
      const entry = this.entries.get(id);
      if (!entry) continue;
      if (changes.chat) entry.snapshot(changes.chat);
      for (const message of changes.messages) this.applyMessage(entry, message, message.deleted_at ? "deleted" : "created");
      if (changes.has_more) {
        const last = changes.messages[changes.messages.length - 1];
        if (last) entry.syncedThrough = Math.max(entry.syncedThrough, last.updated_seq);
      } else {
        entry.seen(changes.last_seq);
        entry.syncedThrough = Math.max(entry.syncedThrough, changes.last_seq, entry.liveMax);
        entry.inSync = true;
      }
      this.changed(entry);
    }
    for (const chat of answer.new_chats) {
      if (this.entries.has(chat.id)) continue;
      const entry = new ChatEntry(chat, 0);
      this.entries.set(chat.id, entry);
      this.changed(entry);
    }
    return [...this.entries.values()].some((e) => !e.inSync);
  }

  private closed(close: { code: number; reason: string; retryInMs?: number }): void {
    this.resumed = false;
    this.commands.failAll();
    for (const entry of this.entries.values()) entry.disconnected();
    this.emit("disconnected", close);
  }

  private receive(frame: ServerFrame): void {
    this.emit("frame", frame);
    this.commands.observe(frame);
    switch (frame.type) {
      case "ack":
      case "pong":
      case "sync.result":
        this.commands.answer(frame);
        break;
      case "error":
        this.failed(frame);
        break;
      case "read":
        this.applyRead(frame);
        break;
      case "typing":
        this.typingIn.apply(frame.chat_id, frame.user_id, frame.state);
        break;
      case "presence":
        this.presenceOf.set(frame.user_id, frame);
        this.emit("presence", frame);
        break;
      case "msg.created":
      case "msg.edited":
      case "msg.deleted":
      case "chat.created":
      case "chat.updated":
      case "member.added":
      case "member.removed":
      case "chat.moderated":
      case "member.muted":
        this.applyEvent(frame);
        break;
      default:
        break;
    }
  }

  private applyEvent(event: ChatEvent): void {
    if (event.type === "member.removed" && event.user_id === this.me) {
      this.removeChat(event.chat_id);
      return;
    }
    let entry = this.entries.get(event.chat_id);
    if (!entry) {
      if (event.type === "chat.created") {
        // A new chat has no history: complete from its first event on.
        entry = new ChatEntry(event.chat, event.seq);
        entry.inSync = true;
      } else {
        // Joined an existing chat (or heard of it first from a later event): its read
        // mark starts at 0, so every message in it may be unread; sync it from 0.
        entry = new ChatEntry(placeholder(event.chat_id), 0);
      }
      this.entries.set(event.chat_id, entry);
      if (this.resumed) {
        this.resumed = false;
        void this.runResume();
      }
    }
    entry.live(event.seq);
    switch (event.type) {
      case "msg.created":
        this.typingIn.apply(event.chat_id, event.message.sender_id, "stop");
        this.applyMessage(entry, event.message, "created");
        break;
      case "msg.edited":
        this.applyMessage(entry, event.message, "edited");
        break;
      case "msg.deleted":
        if (entry.delete(event.message_id, event.seq, event.deleted_at)) {
          const message = entry.messages.get(event.message_id);
          if (message) this.emit("message", { chatId: event.chat_id, message, change: "deleted" });
        }
        break;
      case "chat.created":
      case "chat.updated":
        entry.snapshot(event.chat, event.seq);
        break;
      case "member.added":
        entry.member(event.user_id, event.role, event.seq);
        break;
      case "member.removed":
        entry.member(event.user_id, null, event.seq);
        break;
      case "chat.moderated":
        entry.moderated(event.mode, event.seq);
        break;
      case "member.muted":
        entry.muted(event.user_id, event.until, event.seq);
        break;
    }
    this.changed(entry);
  }

  private applyMessage(entry: ChatEntry, message: Message, change: MessageChange): void {
    if (entry.message(message)) {
      const held = entry.messages.get(message.id) ?? message;
      this.emit("message", { chatId: entry.base.id, message: held, change });
    }
    if (message.sender_id === this.me && this.outbox.stored(message)) {
      for (const [ref, id] of this.sendRefs) if (id === message.client_msg_id) this.sendRefs.delete(ref);
      this.emit("sent", message);
    }
  }

  private applyRead(read: ReadEvent): void {
    const entry = this.entries.get(read.chat_id);
    if (!entry) return;
    entry.readMarks.set(read.user_id, Math.max(entry.readMarks.get(read.user_id) ?? 0, read.up_to_seq));
    if (read.user_id === this.me) entry.markRead(read.up_to_seq);
    this.emit("read", read);
    this.changed(entry);
  }

  private failed(error: ErrorFrame): void {
    const clientMsgId = error.client_msg_id ?? (error.ref === null ? undefined : this.sendRefs.get(error.ref));
    if (clientMsgId !== undefined) {
      const pending = this.outbox.get(clientMsgId);
      if (!pending) return;
      if (isFinal(error.code)) {
        this.outbox.refused(clientMsgId, error.code, error.message);
        this.emit("sendFailed", new SendError(error.code, error.message, pending));
      } else {
        const after = error.retry_after_ms ?? RESEND_AFTER_MS;
        setTimeout(() => {
          if (this.isSynced && this.outbox.get(clientMsgId)) this.transmit(pending);
        }, after);
      }
      return;
    }
    if (!this.commands.answer(error)) this.emit("error", error);
  }

  private transmit(pending: PendingSend): void {
    this.sendCount += 1;
    const ref = `${SEND_REF}${this.sendCount}`;
    this.sendRefs.set(ref, pending.client_msg_id);
    this.connection.send({
      type: "msg.send",
      ref,
      chat_id: pending.chat_id,
      client_msg_id: pending.client_msg_id,
      text: pending.text,
      reply_to: pending.reply_to,
    });
  }

  private removeChat(chatId: string): void {
    if (this.entries.delete(chatId)) this.emit("chatRemoved", chatId);
  }

  private changed(entry: ChatEntry): void {
    this.emit("chat", entry.view(this.me));
  }
}

/** A random idempotency key. `randomUUID` exists only in secure contexts (https, localhost). */
function newClientMsgId(): string {
  const crypto = globalThis.crypto;
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
