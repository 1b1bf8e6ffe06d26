/**
 * The client's picture of the user's chats, built from live events, `sync` answers and
 * REST lists in any order and any number of times: every rule here is order-independent,
 * which is what makes the state after a reconnect equal to that of a client that never
 * left.
 *
 * - A message is kept in the version with the highest `updated_seq` (creation, edits and
 *   the delete all move it; nothing changes a deleted message), so a live event and a
 *   synced copy of the same change are the same thing, applied once.
 * - A delete of a message not seen yet is remembered and applied when it arrives (a
 *   `sync` answer read before the delete can come after it).
 * - Read marks only move forward, so the highest one seen wins.
 * - Members, their mutes and the chat's mode: the newest chat snapshot, overlaid with the
 *   member, mute and mode events heard live on the current connection (a snapshot can be
 *   older than an event heard before it).
 * - Unread counts are counted, never adjusted: a chat holds every message above the
 *   user's read mark, and its unread count is how many of them others sent and are not
 *   deleted, the server's own definition.
 * @module
 */

import { type Chat, type ChatMember, type ChatMode, type Message, OPEN_MODE, type Role } from "./protocol.js";

/** One chat as the client sees it. */
export interface ChatView {
  id: string;
  /** The newest snapshot of the chat, with its members brought up to date. */
  chat: Chat;
  title: string | null;
  participants: ChatMember[];
  /** The user's role, while a member. */
  myRole: Role | undefined;
  /** The highest seq known of this chat. */
  lastSeq: number;
  /** The user's read mark. */
  lastReadSeq: number;
  /** Messages by others above the read mark, not deleted. */
  unreadCount: number;
  /** Read marks of the other members heard live (the server does not sync them). */
  readMarks: ReadonlyMap<string, number>;
  /** Who may post, slow mode, frozen. */
  mode: ChatMode;
  /** Until when the user is muted here, while muted (compare with the clock). */
  mutedUntil: string | undefined;
}

interface MemberChange {
  role: Role | null;
  seq: number;
}

/** Everything kept per chat. */
export class ChatEntry {
  base: Chat;
  /** Member events heard live on the current connection, per user: the latest wins. */
  readonly overlay = new Map<string, MemberChange>();
  /** Mute events heard live on the current connection, per user: the latest wins. */
  readonly muteOverlay = new Map<string, { until: string | null; seq: number }>();
  /** The mode event heard live on the current connection with the highest seq. */
  modeOverlay: { mode: ChatMode; seq: number } | undefined;
  readonly messages = new Map<string, Message>();
  /** Deletes of messages not seen yet: id → the delete's seq and time. */
  readonly pendingDeletes = new Map<string, { seq: number; deleted_at: string }>();
  readonly readMarks = new Map<string, number>();
  lastSeq: number;
  lastReadSeq = 0;
  /**
   * Every change up to this seq is applied: `sync` resumes from here. Advances only when
   * a sync of the chat is complete on the current connection.
   */
  syncedThrough: number;
  /** Highest seq heard live on the current connection. */
  liveMax = 0;
  /** Whether a sync completed on the current connection (live seqs then count). */
  inSync = false;

  constructor(chat: Chat, syncFrom: number) {
    this.base = chat;
    this.lastSeq = chat.last_seq;
    this.syncedThrough = syncFrom;
  }

  /** Takes a snapshot when it is at least as new as the one held. */
  snapshot(chat: Chat, seq = chat.last_seq): void {
    if (seq >= this.base.last_seq) this.base = { ...chat, last_seq: Math.max(seq, chat.last_seq) };
    this.seen(seq);
  }

  /** A seq was heard of (an event, or a `sync` answer's `last_seq`). */
  seen(seq: number): void {
    this.lastSeq = Math.max(this.lastSeq, seq);
  }

  /** A live event's seq on the current connection. */
  live(seq: number): void {
    this.liveMax = Math.max(this.liveMax, seq);
    this.seen(seq);
    if (this.inSync) this.syncedThrough = Math.max(this.syncedThrough, seq);
  }

  /** Records a member event heard live. */
  member(userId: string, role: Role | null, seq: number): void {
    const known = this.overlay.get(userId);
    if (!known || known.seq < seq) this.overlay.set(userId, { role, seq });
  }

  /** Records a mute or unmute heard live. */
  muted(userId: string, until: string | null, seq: number): void {
    const known = this.muteOverlay.get(userId);
    if (!known || known.seq < seq) this.muteOverlay.set(userId, { until, seq });
  }

  /** Records a mode change heard live. */
  moderated(mode: ChatMode, seq: number): void {
    if (!this.modeOverlay || this.modeOverlay.seq < seq) this.modeOverlay = { mode, seq };
  }

  /** The snapshot's mode with the live change applied. */
  mode(): ChatMode {
    return this.modeOverlay?.mode ?? this.base.mode ?? OPEN_MODE;
  }

  /** Applies a message version; true when it changed what is shown. */
  message(message: Message): boolean {
    let next = message;
    const deleted = this.pendingDeletes.get(message.id);
    if (deleted && deleted.seq > next.updated_seq) {
      next = { ...next, text: "", deleted_at: deleted.deleted_at, updated_seq: deleted.seq };
    }
    if (deleted && deleted.seq <= next.updated_seq) this.pendingDeletes.delete(message.id);
    const known = this.messages.get(next.id);
    if (known && known.updated_seq >= next.updated_seq) return false;
    this.messages.set(next.id, next);
    this.seen(next.updated_seq);
    return true;
  }

  /** Applies a delete; true when it changed what is shown. */
  delete(messageId: string, seq: number, deletedAt: string): boolean {
    const known = this.messages.get(messageId);
    if (!known) {
      this.pendingDeletes.set(messageId, { seq, deleted_at: deletedAt });
      return false;
    }
    if (known.updated_seq >= seq) return false;
    this.messages.set(messageId, { ...known, text: "", deleted_at: deletedAt, updated_seq: seq });
    return true;
  }

  /** Moves the user's read mark forward. */
  markRead(upToSeq: number): boolean {
    if (upToSeq <= this.lastReadSeq) return false;
    this.lastReadSeq = upToSeq;
    return true;
  }

  /** A new connection: what the last one heard live becomes the base. */
  disconnected(): void {
    this.base = { ...this.base, participants: this.participants(), mode: this.mode() };
    this.overlay.clear();
    this.muteOverlay.clear();
    this.modeOverlay = undefined;
    this.liveMax = 0;
    this.inSync = false;
  }

  /** The snapshot's members with the live member and mute events applied. */
  participants(): ChatMember[] {
    const members = new Map<string, ChatMember>(this.base.participants.map((m) => [m.user_id, { ...m }]));
    for (const [userId, change] of this.overlay) {
      if (change.role) members.set(userId, { ...members.get(userId), user_id: userId, role: change.role });
      else members.delete(userId);
    }
    for (const [userId, change] of this.muteOverlay) {
      const member = members.get(userId);
      if (!member) continue;
      if (change.until) member.muted_until = change.until;
      else delete member.muted_until;
    }
    return [...members.values()].sort((a, b) => (a.user_id < b.user_id ? -1 : 1));
  }

  /** Messages by others above the read mark, not deleted. */
  unread(me: string): number {
    let count = 0;
    for (const m of this.messages.values()) {
      if (m.seq > this.lastReadSeq && m.seq <= this.lastSeq && m.sender_id !== me && !m.deleted_at) count += 1;
    }
    return count;
  }

  /** The public view. */
  view(me: string): ChatView {
    const participants = this.participants();
    const mode = this.mode();
    const mine = participants.find((m) => m.user_id === me);
    return {
      id: this.base.id,
      chat: { ...this.base, participants, last_seq: this.lastSeq, mode },
      title: this.base.title,
      participants,
      myRole: mine?.role,
      lastSeq: this.lastSeq,
      lastReadSeq: this.lastReadSeq,
      unreadCount: this.unread(me),
      readMarks: new Map(this.readMarks),
      mode,
      mutedUntil: mine?.muted_until,
    };
  }

  /** Messages in seq order. */
  sortedMessages(): Message[] {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }
}
