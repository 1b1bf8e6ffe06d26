/**
 * The SDK against the real stack (started by tests/tests/e2e/sdk.rs): every feature a
 * user sees, a resume after the edge is stopped mid-stream compared with a client that
 * never left and with the server's own history, and every frame type of the protocol.
 */

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { isDeepStrictEqual } from "node:util";

import {
  ChatClient,
  CommandError,
  type Message,
  type OutboxStore,
  type PendingSend,
  SERVER_FRAME_TYPES,
  postingBlock,
} from "../src/index.js";
import { control, env, picture, releaseControl, run, sleep, token, until } from "./harness.js";

const seenFrames = new Set<string>();
const clients: ChatClient[] = [];

after(() => {
  for (const client of clients) client.close();
  releaseControl();
});

interface ClientSetup {
  url?: string | string[];
  ttlS?: number;
  outboxStore?: OutboxStore;
  counter?: { tokens: number };
  /** Replaces the token provider. */
  provider?: () => string;
}

function client(userId: string, options: ClientSetup = {}): ChatClient {
  const chat = new ChatClient({
    url: options.url ?? env.wsUrl2,
    apiUrl: env.apiUrl,
    token:
      options.provider ??
      (() => {
        if (options.counter) options.counter.tokens += 1;
        return token(userId, options.ttlS);
      }),
    ...(options.outboxStore ? { outboxStore: options.outboxStore } : {}),
    backoff: { initialMs: 100, maxMs: 2000 },
  });
  chat.on("frame", (frame) => seenFrames.add(frame.type));
  clients.push(chat);
  return chat;
}

/** Every message of a chat as the server has it, oldest first. */
async function serverHistory(reader: ChatClient, chatId: string): Promise<Message[]> {
  const all: Message[] = [];
  let cursor: string | undefined;
  do {
    const page = await reader.api.history(chatId, { after_seq: 0, limit: 200, ...(cursor ? { cursor } : {}) });
    all.push(...page.items);
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
  return all;
}

/** An outbox store kept in memory, standing in for a page's IndexedDB. */
function memoryStore(): OutboxStore & { saved: PendingSend[] } {
  const store = {
    saved: [] as PendingSend[],
    load: async () => structuredClone(store.saved),
    save: async (pending: PendingSend[]) => {
      store.saved = structuredClone(pending);
    },
  };
  return store;
}

test("live features: chats, messages, edits, deletes, unread counts, read marks, typing, presence, members, token refresh", async () => {
  const alice = `${run}-alice`;
  const bob = `${run}-bob`;
  const carol = `${run}-carol`;
  const counter = { tokens: 0 };
  // Short enough that the edge sends `token.expiring` (halfway) during the test.
  const a = client(alice, { url: env.wsUrl, ttlS: 8, counter });
  const b = client(bob);
  let drops = 0;
  a.on("disconnected", () => (drops += 1));
  const authAcks: string[] = [];
  a.on("frame", (frame) => {
    if (frame.type === "ack" && frame.ref?.startsWith("auth:")) authAcks.push(frame.ref);
  });
  const connectedAt = Date.now();
  await Promise.all([a.connect(), b.connect()]);
  assert.equal(a.userId, alice);
  assert.ok((await a.ping()) >= 0);

  const created = await b.api.createChat({ type: "group", title: "Physics", member_ids: [alice] });
  await until("alice hears of the new chat", () => a.chat(created.id) !== undefined);
  assert.equal(a.chat(created.id)?.title, "Physics");
  assert.equal(a.chat(created.id)?.myRole, "member");

  a.watchPresence([bob]);
  await until("bob is online for alice", () => a.presence(bob)?.status === "online");

  b.typing(created.id);
  await until("alice sees bob typing", () => a.typists(created.id).includes(bob));
  b.stopTyping(created.id);
  await until("bob stopped typing", () => a.typists(created.id).length === 0);
  // The presence worker forwards one typing signal per user, chat and second.
  await sleep(1100);
  b.typing(created.id);
  await until("alice sees bob typing again", () => a.typists(created.id).includes(bob));
  const typingSince = Date.now();
  await until("bob's start expires after 6 s", () => a.typists(created.id).length === 0, 10_000);
  assert.ok(Date.now() - typingSince >= 5000, "a typing start lasted under 6 s");

  const first = await b.send(created.id, "hello alice");
  assert.equal(first.text, "hello alice");
  assert.equal(first.sender_id, bob);
  await until("alice has bob's message", () => a.messages(created.id).some((m) => m.id === first.id));
  assert.equal(a.chat(created.id)?.unreadCount, 1);

  await b.edit(created.id, first.id, "hello alice (edited)");
  await until("alice sees the edit", () => a.messages(created.id).find((m) => m.id === first.id)?.text === "hello alice (edited)");
  await assert.rejects(a.edit(created.id, first.id, "not mine"), (error: unknown) => error instanceof CommandError && error.code === "forbidden");

  await b.delete(created.id, first.id);
  await until("alice sees the tombstone", () => a.messages(created.id).find((m) => m.id === first.id)?.deleted_at != null);
  assert.equal(a.messages(created.id).find((m) => m.id === first.id)?.text, "");
  assert.equal(a.chat(created.id)?.unreadCount, 0, "a deleted message is not unread");

  await b.send(created.id, "two");
  const three = await b.send(created.id, "three");
  await until("two unread", () => a.chat(created.id)?.unreadCount === 2);
  const mine = await a.send(created.id, "mine is never unread");
  assert.equal(mine.sender_id, alice);
  await until("alice's own message arrived", () => a.messages(created.id).some((m) => m.id === mine.id));
  assert.equal(a.chat(created.id)?.unreadCount, 2);
  await a.markRead(created.id, three.seq);
  assert.equal(a.chat(created.id)?.unreadCount, 0);
  await until("bob hears alice's read mark", () => (b.chat(created.id)?.readMarks.get(alice) ?? 0) >= three.seq);
  const listed = (await a.api.allChats()).find((c) => c.id === created.id);
  assert.equal(listed?.unread_count, 0);
  assert.equal(listed?.last_read_seq, three.seq);

  await b.api.renameChat(created.id, "Physics 101");
  await until("alice sees the rename", () => a.chat(created.id)?.title === "Physics 101");
  await b.api.addMembers(created.id, [carol]);
  await until("alice sees carol join", () => a.chat(created.id)?.participants.some((m) => m.user_id === carol) === true);
  await b.api.removeMember(created.id, carol);
  await until("alice sees carol leave", () => a.chat(created.id)?.participants.every((m) => m.user_id !== carol) === true);

  const page = await a.history(created.id, { limit: 2 });
  assert.equal(page.items.length, 2);
  assert.ok(page.next_cursor, "a second page exists");
  assert.deepEqual(page.items.map((m) => m.id), [mine.id, three.id], "history is newest first");

  await until("the token was refreshed before it expired", () => authAcks.length > 0, 15_000);
  assert.ok(counter.tokens >= 2, "the provider was asked again for auth.refresh");
  await sleep(Math.max(0, connectedAt + 9000 - Date.now()));
  await a.ping();
  assert.equal(drops, 0, "the connection stayed open past the first token's expiry");

  b.close();
  await until("bob is offline for alice", () => a.presence(bob)?.status === "offline", 70_000);
});

test("resume after the edge stops mid-stream: same state as a client that never left, nothing lost or duplicated", async () => {
  const alice = `${run}-alice2`;
  const bob = `${run}-bob2`;
  const carol = `${run}-carol2`;
  const away = client(alice, { url: env.wsUrl });
  const mover = client(alice, { url: [env.wsUrl, env.wsUrl2] });
  const stayed = client(alice);
  const b = client(bob);
  await Promise.all([away.connect(), mover.connect(), stayed.connect(), b.connect()]);
  const chat = await b.api.createChat({ type: "group", title: "Chemistry", member_ids: [alice] });
  await until("every alice hears of the chat", () => [away, mover, stayed].every((c) => c.chat(chat.id)));

  const reconnectAfter: number[] = [];
  away.on("frame", (frame) => {
    if (frame.type === "reconnect") reconnectAfter.push(frame.after_ms);
  });
  const closes: number[] = [];
  const retries: (number | undefined)[] = [];
  away.on("disconnected", (close) => {
    closes.push(close.code);
    retries.push(close.retryInMs);
  });

  // A presence watch, which the client renews on every new connection: bob stays
  // online throughout, so a presence frame after the drop is the renewed watch's
  // snapshot.
  let presenceSinceDrop = false;
  away.on("disconnected", () => {
    presenceSinceDrop = false;
  });
  away.on("frame", (frame) => {
    if (frame.type === "presence" && frame.user_id === bob) presenceSinceDrop = true;
  });
  away.watchPresence([bob]);
  await until("bob is online for the away client", () => away.presence(bob)?.status === "online");

  const sent: Message[] = [];
  for (let i = 0; i < 5; i += 1) sent.push(await b.send(chat.id, `before ${i}`));
  await until("the away client has the first messages", () => away.messages(chat.id).length === 5);
  // Bob keeps sending while the edge goes down under alice and comes back.
  const stream = (async () => {
    // Long enough that the edge is down well before the stream ends, on a busy box too.
    for (let i = 0; i < 40; i += 1) {
      sent.push(await b.send(chat.id, `stream ${i}`));
      await sleep(40);
    }
  })();
  await until("the stream reaches the away client", () => away.messages(chat.id).length >= 8);
  await control("stop-edge");
  await until("the away client noticed", () => !away.isSynced);
  assert.deepEqual(closes.slice(0, 1), [1001]);
  assert.equal(reconnectAfter.length, 1, "the edge said when to come back");
  assert.equal(retries[0], reconnectAfter[0], "the client dials again after the reconnect frame's after_ms");

  // While it is away: more messages, an edit, a delete, a rename, a member, a read mark
  // from another device, and a send of its own.
  const ownSend = away.send(chat.id, "written while away");
  await stream;
  await b.edit(chat.id, sent[3]!.id, "before 3 (edited while away)");
  await b.delete(chat.id, sent[5]!.id);
  await b.delete(chat.id, sent[12]!.id);
  await b.api.renameChat(chat.id, "Chemistry (away)");
  await b.api.addMembers(chat.id, [carol]);
  await until("the device that stayed saw everything", () => stayed.messages(chat.id).length === 45);
  await stayed.markRead(chat.id, sent[14]!.seq);
  assert.ok(away.messages(chat.id).length < 45, "the away client missed part of the stream, which only sync can bring");
  assert.equal(away.pendingSends().length, 1);
  await until("the client given a second edge moved there", () => mover.isSynced, 20_000);

  // A page that queues a send while the edge is down, then closes before it is stored.
  const store = memoryStore();
  const reloaded = client(alice, { url: env.wsUrl, outboxStore: store });
  void reloaded.connect();
  void reloaded.send(chat.id, "queued before a reload").catch(() => undefined);
  await until("the send is in the page's store", () => store.saved.length === 1);
  reloaded.close();

  await control("start-edge");
  const stored = await ownSend;
  assert.equal(stored.text, "written while away");
  assert.ok(away.isSynced);
  await until("the presence watch was renewed on the new connection", () => presenceSinceDrop);
  const again = client(alice, { url: env.wsUrl, outboxStore: store });
  const fromReload = new Promise<Message>((resolve) => again.on("sent", resolve));
  await again.connect();
  assert.equal((await fromReload).text, "queued before a reload");
  await until("the reloaded page's store is empty", () => store.saved.length === 0);

  for (let i = 0; i < 3; i += 1) sent.push(await b.send(chat.id, `after ${i}`));
  const truth = await serverHistory(b, chat.id);
  const everyone = [away, mover, stayed];
  await until(
    "every alice holds the server's history",
    () => everyone.every((c) => isDeepStrictEqual(c.messages(chat.id), truth)),
    20_000,
  );
  for (const other of [away, mover]) assert.deepEqual(picture(other), picture(stayed));
  // A fresh page holds what can be unread, not the whole history; its counts agree.
  assert.equal(again.chat(chat.id)?.unreadCount, stayed.chat(chat.id)?.unreadCount);
  assert.equal(again.chat(chat.id)?.lastReadSeq, stayed.chat(chat.id)?.lastReadSeq);
  assert.deepEqual(away.messages(chat.id), truth);
  assert.equal(truth.filter((m) => m.text === "written while away").length, 1);
  assert.equal(truth.filter((m) => m.text === "queued before a reload").length, 1);
  assert.equal(truth.find((m) => m.id === sent[3]!.id)?.text, "before 3 (edited while away)");
  assert.equal(truth.find((m) => m.id === sent[5]!.id)?.deleted_at != null, true);

  const view = away.chat(chat.id);
  const listed = (await away.api.allChats()).find((c) => c.id === chat.id);
  assert.equal(view?.title, "Chemistry (away)");
  assert.ok(view?.participants.some((m) => m.user_id === carol));
  assert.equal(view?.lastReadSeq, listed?.last_read_seq);
  assert.equal(view?.unreadCount, listed?.unread_count);
  assert.equal(view?.lastSeq, listed?.last_seq);
});

test("a token that could not be refreshed ends with 4001, and the next dial brings a fresh one", async () => {
  const user = `${run}-dora`;
  let failing = false;
  let ttlS = 4;
  const c = client(user, {
    url: env.wsUrl,
    provider: () => {
      if (failing) throw new Error("the platform's token service is down");
      return token(user, ttlS);
    },
  });
  const closes: number[] = [];
  c.on("disconnected", (close) => closes.push(close.code));
  const authErrors: Error[] = [];
  c.on("authError", (error) => {
    authErrors.push(error);
    failing = false;
    ttlS = 3600;
  });
  await c.connect();
  failing = true;
  await until("the edge closed the connection at the token's expiry", () => closes.includes(4001), 10_000);
  assert.equal(authErrors.length, 1, "the refresh failed once");
  await until("the client is back with a fresh token", () => c.isSynced, 10_000);
  assert.ok((await c.ping()) >= 0);
});

test("a connection over the per-user limit (4010) backs off further, and comes in once a slot is free", async () => {
  const user = `${run}-erin`;
  const first = client(user);
  await first.connect();
  const limit = await new Promise<number>((resolve) => {
    const probe = client(user);
    probe.on("frame", (frame) => {
      if (frame.type === "hello") resolve(frame.limits.max_connections_per_user);
    });
    probe.connect().catch(() => undefined);
  });
  const others = Array.from({ length: limit - 2 }, () => client(user));
  await Promise.all(others.map((c) => c.connect()));
  const extra = client(user);
  const closes: { code: number; retryInMs?: number }[] = [];
  extra.on("disconnected", (close) => closes.push(close));
  extra.connect().catch(() => undefined);
  await until("the edge refused the extra connection with 4010", () => closes.some((c) => c.code === 4010), 10_000);
  // The test clients' backoff starts at 100 ms; four penalty steps put the first
  // delay after 4010 between 800 and 1,600 ms, where a plain drop gets 50 to 100.
  const delay = closes.find((c) => c.code === 4010)?.retryInMs ?? 0;
  assert.ok(delay >= 800, `the delay after 4010 was ${delay} ms`);
  first.close();
  await until("the extra client is in once a slot is free", () => extra.isSynced, 20_000);
});

test("a connection closed for ignoring the rate limit (4008) backs off further, then comes back", async () => {
  const c = client(`${run}-finn`);
  const closes: { code: number; retryInMs?: number }[] = [];
  c.on("disconnected", (close) => closes.push(close));
  await c.connect();
  // An application pinging in a loop past the burst the stack gives this suite (200
  // commands, then 2 a second; tests/tests/e2e/sdk.rs), without waiting for
  // `retry_after_ms`, so that the edge counts 50 refusals in a row. One at a time: the
  // edge has read every frame when it closes, so the close frame is not lost to a
  // reset, as it is when frames are still unread.
  for (let i = 0; i < 1000 && closes.length === 0; i += 1) await c.ping().catch(() => undefined);
  await until("the edge closed the flooding connection", () => closes.length > 0, 10_000);
  assert.equal(closes[0]?.code, 4008, "closed for ignoring the rate limit");
  // Four penalty steps, as after 4010: between 800 and 1,600 ms.
  const delay = closes[0]?.retryInMs ?? 0;
  assert.ok(delay >= 800, `the delay after 4008 was ${delay} ms`);
  await until("the client is back after the longer delay", () => c.isSynced, 20_000);
  assert.ok((await c.ping()) >= 0);
});

test("moderation: an announcement chat, a mute and its end, a freeze, all known again after a reconnect", async () => {
  const teacher = `${run}-tess`;
  const kid = `${run}-kim`;
  const t = client(teacher, { url: env.wsUrl });
  const k = client(kid);
  await Promise.all([t.connect(), k.connect()]);
  const created = await t.api.createChat({ type: "group", title: "Maths", member_ids: [kid] });
  await until("kim hears of the chat", () => k.chat(created.id) !== undefined);
  const kimsView = () => k.chat(created.id);
  assert.equal(postingBlock(kimsView()!), undefined, "an open chat");

  await t.moderate(created.id, { posting: "admins" });
  await until("kim learns it is an announcement chat", () => kimsView()?.mode.posting === "admins");
  assert.deepEqual(postingBlock(kimsView()!), { reason: "announcement" });
  assert.equal(postingBlock(t.chat(created.id)!), undefined, "the teacher posts");

  await t.moderate(created.id, { posting: "everyone" });
  const until1 = new Date(Date.now() + 10 * 60_000);
  await t.mute(created.id, kid, until1);
  await until("kim learns she is muted", () => kimsView()?.mutedUntil !== undefined);
  assert.equal(postingBlock(kimsView()!)?.reason, "muted");
  k.reconnect();
  await until("kim is back", () => k.isSynced);
  await until("the mute survives the reconnect", () => kimsView()?.mutedUntil !== undefined);
  await t.mute(created.id, kid, null);
  await until("kim is unmuted", () => kimsView()?.mutedUntil === undefined);

  await t.api.moderateChat(created.id, { frozen: true });
  await until("kim sees the chat frozen", () => kimsView()?.mode.frozen === true);
  assert.deepEqual(postingBlock(t.chat(created.id)!), { reason: "frozen" }, "frozen for the teacher too");
  k.reconnect();
  await until("kim is back again", () => k.isSynced);
  assert.equal(kimsView()?.mode.frozen, true, "the freeze comes back with sync");
  await t.api.moderateChat(created.id, { frozen: false });
  await until("kim sees it open", () => kimsView()?.mode.frozen === false);
});

test("every frame type the server sends was received and typed", () => {
  const missing = SERVER_FRAME_TYPES.filter((type) => !seenFrames.has(type));
  assert.deepEqual(missing, [], `never received: ${missing.join(", ")}`);
  const untyped = [...seenFrames].filter((type) => !(SERVER_FRAME_TYPES as readonly string[]).includes(type));
  assert.deepEqual(untyped, [], `received but not in the SDK's types: ${untyped.join(", ")}`);
});
