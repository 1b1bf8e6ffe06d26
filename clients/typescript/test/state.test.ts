/**
 * The merge rules of state.ts, which make a resumed client equal to one that never
 * left: applying the same changes in every order, and twice, gives one state.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { Backoff } from "../src/backoff.js";
import type { Chat, Message } from "../src/protocol.js";
import { postingBlock } from "../src/moderation.js";
import { ChatEntry } from "../src/state.js";
import { TypingSender } from "../src/typing.js";

const chat: Chat = {
  id: "c1",
  type: "group",
  title: "Biology",
  created_by: "bob",
  created_at: "2026-01-01T00:00:00.000Z",
  updated_at: "2026-01-01T00:00:00.000Z",
  last_seq: 1,
  last_message: null,
  participants: [
    { user_id: "alice", role: "member" },
    { user_id: "bob", role: "owner" },
  ],
  external_id: null,
  history_visibility: "all",
  mode: { posting: "everyone", slow_mode_seconds: 0, frozen: false },
};

function message(seq: number, sender: string, text: string, updatedSeq = seq): Message {
  return {
    id: `m${seq}`,
    chat_id: "c1",
    seq,
    updated_seq: updatedSeq,
    sender_id: sender,
    client_msg_id: `k${seq}`,
    text,
    reply_to: null,
    created_at: "2026-01-01T00:00:01.000Z",
    edited_at: updatedSeq === seq ? null : "2026-01-01T00:00:02.000Z",
    deleted_at: null,
  };
}

type Change = (entry: ChatEntry) => void;

const changes: Record<string, Change> = {
  created2: (e) => e.message(message(2, "bob", "two")),
  created3: (e) => e.message(message(3, "bob", "three")),
  edited2: (e) => e.message(message(2, "bob", "two, edited", 4)),
  deleted3: (e) => e.delete("m3", 5, "2026-01-01T00:00:05.000Z"),
  mine6: (e) => e.message(message(6, "alice", "mine")),
  read2: (e) => e.markRead(2),
};

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) return [items];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

function state(order: string[]): unknown {
  const entry = new ChatEntry(chat, 0);
  for (const name of order) changes[name]?.(entry);
  return { messages: entry.sortedMessages(), unread: entry.unread("alice"), read: entry.lastReadSeq, seq: entry.lastSeq };
}

test("changes applied in any order, and again, give one state", () => {
  const names = Object.keys(changes);
  const expected = state(names);
  for (const order of permutations(names)) {
    assert.deepEqual(state(order), expected, `order ${order.join(", ")}`);
    assert.deepEqual(state([...order, ...order]), expected, `twice: ${order.join(", ")}`);
  }
  assert.deepEqual(expected, {
    messages: [
      message(2, "bob", "two, edited", 4),
      { ...message(3, "bob", "three"), text: "", deleted_at: "2026-01-01T00:00:05.000Z", updated_seq: 5 },
      message(6, "alice", "mine"),
    ],
    unread: 0,
    read: 2,
    seq: 6,
  });
});

test("unread counts others' live messages above the read mark", () => {
  const entry = new ChatEntry(chat, 0);
  entry.message(message(2, "bob", "a"));
  entry.message(message(3, "alice", "b"));
  entry.message(message(4, "bob", "c"));
  assert.equal(entry.unread("alice"), 2);
  entry.delete("m4", 5, "2026-01-01T00:00:05.000Z");
  assert.equal(entry.unread("alice"), 1);
  assert.equal(entry.markRead(3), true);
  assert.equal(entry.markRead(2), false, "a read mark never moves back");
  assert.equal(entry.unread("alice"), 0);
});

test("a member event heard live wins over an older snapshot, and the next connection starts from both", () => {
  const entry = new ChatEntry(chat, 0);
  entry.member("carol", "member", 7);
  entry.snapshot({ ...chat, last_seq: 6 });
  assert.deepEqual(
    entry.participants().map((m) => m.user_id),
    ["alice", "bob", "carol"],
  );
  entry.member("carol", null, 8);
  assert.deepEqual(
    entry.participants().map((m) => m.user_id),
    ["alice", "bob"],
  );
  entry.disconnected();
  entry.snapshot({ ...chat, last_seq: 9, participants: [...chat.participants, { user_id: "dave", role: "admin" }] });
  assert.deepEqual(
    entry.participants().map((m) => `${m.user_id}:${m.role}`),
    ["alice:member", "bob:owner", "dave:admin"],
  );
});

test("reconnect delays grow with jitter, stay under the cap and start again after hello", () => {
  const draws = [0, 1, 0.5];
  let i = 0;
  const backoff = new Backoff({ initialMs: 100, maxMs: 1000 }, () => draws[i++ % draws.length] ?? 0);
  assert.deepEqual([backoff.next(), backoff.next(), backoff.next()], [50, 200, 300]);
  for (let n = 0; n < 20; n += 1) assert.ok(backoff.next() <= 1000);
  backoff.reset();
  assert.ok(backoff.next() <= 100);
});

test("typing renews start every 3 s and sends stop only after a start", () => {
  let now = 0;
  const typing = new TypingSender(() => now);
  assert.equal(typing.shouldStop("c1"), false);
  assert.equal(typing.shouldStart("c1"), true);
  now = 2999;
  assert.equal(typing.shouldStart("c1"), false);
  now = 3000;
  assert.equal(typing.shouldStart("c1"), true);
  assert.equal(typing.shouldStop("c1"), true);
  assert.equal(typing.shouldStart("c1"), true, "a start right after a stop goes out");
});

test("the mode and mutes heard live overlay the snapshot and survive a reconnect", () => {
  const entry = new ChatEntry(chat, 0);
  assert.equal(postingBlock(entry.view("alice")), undefined);
  entry.moderated({ posting: "admins", slow_mode_seconds: 0, frozen: false }, 3);
  entry.moderated({ posting: "everyone", slow_mode_seconds: 0, frozen: false }, 2);
  assert.deepEqual(postingBlock(entry.view("alice")), { reason: "announcement" }, "the latest change wins");
  assert.equal(postingBlock(entry.view("bob")), undefined, "owners post in announcement chats");
  entry.moderated({ posting: "everyone", slow_mode_seconds: 0, frozen: false }, 4);
  const later = "2999-01-01T00:00:00.000Z";
  entry.muted("alice", later, 5);
  assert.deepEqual(postingBlock(entry.view("alice")), { reason: "muted", until: later });
  entry.disconnected();
  assert.equal(entry.view("alice").mutedUntil, later, "what was heard live becomes the base");
  entry.muted("alice", null, 6);
  assert.equal(entry.view("alice").mutedUntil, undefined);
  assert.equal(postingBlock(entry.view("alice"), Date.parse(later) + 1), undefined);
  entry.moderated({ posting: "everyone", slow_mode_seconds: 0, frozen: true }, 7);
  assert.deepEqual(postingBlock(entry.view("bob")), { reason: "frozen" }, "a freeze holds for owners too");
});
