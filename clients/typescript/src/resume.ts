/**
 * Gap-free resume, run on every connection after `hello` (the edge already delivers the
 * user's chats live by then, so nothing can fall between the live stream and `sync`):
 *
 * 1. the REST chat list: every chat with the user's read mark (read marks are not part
 *    of `sync`, and move while a device is away); a chat not held yet is synced from its
 *    read mark, so that every message that can be unread is held;
 * 2. `sync` naming every held chat with the seq it is complete to, again and again while
 *    a chat or the answer says `has_more` (a chat resumes from the last `updated_seq`
 *    it got); chats the answer names as new are synced from 0 in the next round, and
 *    the chat list is read again for their read marks.
 *
 * A chat becomes complete when its sync is: from then on it is complete to the highest
 * seq seen, by sync or live, on this connection.
 * @module
 */

import type { ChatListItem, SyncResultFrame } from "./protocol.js";

/** What resume needs of the client. */
export interface ResumeHost {
  listChats(): Promise<ChatListItem[]>;
  sync(chats: Record<string, number>): Promise<SyncResultFrame>;
  /** Applies a chat list: snapshots, read marks, new chats synced from their mark. */
  applyList(items: ChatListItem[]): void;
  /** Applies one answer; returns the chats still incomplete, with their next seq. */
  applySync(answer: SyncResultFrame, cursors: Map<string, number>): boolean;
  /** Seqs to name for every held chat. */
  cursors(): Map<string, number>;
  /** Whether the connection this resume serves is still the current one. */
  current(): boolean;
}

/** Most `sync` rounds in one resume; each returns at least one message or chat. */
const MAX_ROUNDS = 10_000;

/** Runs one resume; false when the connection went away before it finished. */
export async function resume(host: ResumeHost): Promise<boolean> {
  host.applyList(await host.listChats());
  if (!host.current()) return false;
  let relist = false;
  for (let round = 0; round < MAX_ROUNDS; round += 1) {
    const cursors = host.cursors();
    const answer = await host.sync(Object.fromEntries(cursors));
    if (!host.current()) return false;
    if (answer.new_chats.length > 0) relist = true;
    const incomplete = host.applySync(answer, cursors);
    if (!incomplete && !answer.has_more) break;
  }
  if (relist) {
    host.applyList(await host.listChats());
    if (!host.current()) return false;
  }
  return true;
}
