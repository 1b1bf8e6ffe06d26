// The web client in a real browser (Debian's chromium driven by playwright-core),
// against the real stack that tests/tests/e2e/web.rs starts and whose api serves the
// built page. Three users in three browser contexts: a group and a direct chat, one
// user dropping off the network while the other sends, edits and deletes, a third
// added to the group; then a send refused while its sender was away (removed from the
// group), shown failed and stored once by Retry after he is added back; then a
// teacher's moderation as the composer shows it. Screenshots of the main screens go
// to CHAT_WEB_SCREENSHOTS.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const base = process.env.CHAT_WEB_URL ?? "";
const wsUrl = process.env.CHAT_WEB_WS_URL ?? "";
const shots = process.env.CHAT_WEB_SCREENSHOTS ?? "screenshots";
const run = Math.random().toString(36).slice(2, 8);
const WAIT = 15_000;

let browser;
before(async () => {
  assert.ok(base && wsUrl, "CHAT_WEB_URL and CHAT_WEB_WS_URL are set by tests/tests/e2e/web.rs");
  mkdirSync(shots, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHAT_WEB_CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
});
after(async () => browser?.close());

/**
 * A user in a browser context of their own. Its WebSockets pass through a route, so
 * that `offline()` can cut them as a lost network would (the browser's offline
 * emulation stops HTTP but not open WebSockets) and refuse new ones until `online()`.
 * The route keeps the frames the server sent (`frames`), for waits on what the page
 * does not show.
 */
async function user(id, name) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const sockets = new Set();
  const frames = [];
  let cut = false;
  await context.routeWebSocket(/\/ws/, (page) => {
    if (cut) return page.close({ code: 1011, reason: "offline" });
    const server = page.connectToServer();
    server.onMessage((frame) => {
      frames.push(String(frame));
      page.send(frame);
    });
    const link = { page, server };
    sockets.add(link);
    page.onClose(() => sockets.delete(link));
  });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(`${base}/?ws=${encodeURIComponent(wsUrl)}`);
  if (id === "ann") await page.screenshot({ path: `${shots}/sign-in.png` });
  await page.fill("#signin-user", `${id}-${run}`);
  await page.fill("#signin-name", `${name} ${run}`);
  await page.click("#signin-submit");
  await page.locator("#banner").waitFor({ state: "hidden", timeout: WAIT });
  return {
    id: `${id}-${run}`,
    name: `${name} ${run}`,
    page,
    context,
    errors,
    frames,
    async offline() {
      cut = true;
      await context.setOffline(true);
      for (const { page: side, server } of sockets) {
        await side.close({ code: 1011, reason: "offline" }).catch(() => {});
        await server.close().catch(() => {});
      }
    },
    async online() {
      cut = false;
      await context.setOffline(false);
    },
  };
}

const chatButton = (u, title) =>
  u.page.locator(".chat-item").filter({ has: u.page.locator(".chat-title").getByText(title, { exact: true }) });
const message = (u, text) => u.page.locator("#messages li.msg", { hasText: text });

async function send(u, text) {
  await u.page.fill("#composer", text);
  await u.page.press("#composer", "Enter");
}

/** The open chat's messages as a user sees them: seq, sender, text or tombstone, edited. */
function transcript(u) {
  return u.page.$$eval("#messages li.msg", (items) =>
    items.map((li) => ({
      seq: li.getAttribute("data-seq"),
      pending: li.classList.contains("pending"),
      text: li.querySelector(".text")?.textContent ?? "",
      edited: !!li.querySelector(".edited"),
    })),
  );
}

/** Waits until `check()` holds, failing with `what` after WAIT. */
async function until(what, check) {
  const deadline = Date.now() + WAIT;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what} did not happen within ${WAIT} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A REST call from `u`'s page, with a development token of `u`'s. */
function rest(u, method, path, body) {
  return u.page.evaluate(
    async ({ method, path, body, userId, name }) => {
      const minted = await fetch("/api/dev/token", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ user_id: userId, name }),
      }).then((r) => r.json());
      const headers = { authorization: `Bearer ${minted.token}` };
      if (body !== undefined) headers["content-type"] = "application/json";
      const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    },
    { method, path, body, userId: u.id, name: u.name },
  );
}

async function addToGroup(owner, member) {
  await owner.page.click("#add-people");
  await owner.page.fill("#people-search", member.name);
  await owner.page.locator(`#people-results input[data-user-id="${member.id}"]`).check({ timeout: WAIT });
  await owner.page.click("#people-submit");
}

async function createGroup(owner, title, members) {
  await owner.page.click("#new-chat");
  for (const member of members) {
    await owner.page.fill("#people-search", member.name);
    await owner.page.locator(`#people-results input[data-user-id="${member.id}"]`).check({ timeout: WAIT });
  }
  await owner.page.fill("#group-title", title);
  await owner.page.click("#people-submit");
  await owner.page.locator("#chat-title", { hasText: title }).waitFor({ timeout: WAIT });
}

test("two users chat in a group and a direct chat, one drops off and comes back to the same history, a third is added live", async () => {
  const ann = await user("ann", "Ann");
  const ben = await user("ben", "Ben");
  const carl = await user("carl", "Carl");
  const group = `Physics ${run}`;
  await ann.page.screenshot({ path: `${shots}/empty.png` });

  // Ann creates the group; Ben sees it appear without a reload.
  await createGroup(ann, group, [ben]);
  await chatButton(ben, group).waitFor({ timeout: WAIT });
  await chatButton(ben, group).click();

  // Live messages, a clickable link, text that is not HTML.
  await send(ann, "Hello Ben, notes at https://example.edu/notes.");
  await message(ben, "notes at").waitFor({ timeout: WAIT });
  assert.equal(await message(ben, "notes at").locator("a").getAttribute("href"), "https://example.edu/notes");
  const injection = `<img src=x onerror="window.__pwned=1"><b>bold</b><script>window.__pwned=2</script>`;
  await send(ann, injection);
  await message(ben, "<b>bold</b>").waitFor({ timeout: WAIT });
  assert.equal(await message(ben, "<b>bold</b>").locator(".text").textContent(), injection);
  assert.equal(await ben.page.locator("#messages img, #messages b, #messages script").count(), 0);
  assert.equal(await ben.page.evaluate(() => window.__pwned), undefined);

  // Typing, then the read receipt of Ben's reading.
  await ben.page.fill("#composer", "typing…");
  await ben.page.type("#composer", " a");
  await ann.page.locator("#typing", { hasText: ben.name }).waitFor({ timeout: WAIT });
  await ben.page.fill("#composer", "");
  await ann.page.locator(".seen", { hasText: `Seen by ${ben.name}` }).waitFor({ timeout: WAIT });
  await send(ben, "Thanks Ann!");
  await message(ann, "Thanks Ann!").waitFor({ timeout: WAIT });

  // Ben starts a direct chat; Ann, in the group, gets a badge, a preview and a presence dot.
  await ben.page.click("#new-chat");
  await ben.page.fill("#people-search", ann.name);
  await ben.page.locator(`#people-results [data-direct="${ann.id}"]`).click({ timeout: WAIT });
  await ben.page.locator("#chat-title", { hasText: ann.name }).waitFor({ timeout: WAIT });
  await send(ben, "A private question");
  const direct = chatButton(ann, ben.name);
  await direct.locator(".badge", { hasText: "1" }).waitFor({ timeout: WAIT });
  assert.match(await direct.locator(".preview").textContent(), /A private question/);
  await direct.locator(".dot.online").waitFor({ timeout: WAIT });
  await ann.page.screenshot({ path: `${shots}/group-chat.png` });
  await direct.click();
  await direct.locator(".badge").waitFor({ state: "detached", timeout: WAIT });
  await send(ann, "Ask away");
  await message(ben, "Ask away").waitFor({ timeout: WAIT });

  // A send refused for good is shown as failed, with retry and discard.
  await send(ann, "x".repeat(4001));
  await ann.page.locator("li.pending.failed [data-action=retry]").waitFor({ timeout: WAIT });
  await ann.page.click("li.pending.failed [data-action=discard]");
  await ann.page.locator("li.pending.failed").waitFor({ state: "detached", timeout: WAIT });

  // Ben loses the network, in the group; he writes while away (pending).
  await chatButton(ann, group).click();
  await chatButton(ben, group).click();
  await ben.offline();
  await ben.page.locator("#banner", { hasText: "reconnecting" }).waitFor({ timeout: WAIT });
  await send(ben, "Written while offline");
  await ben.page.locator("li.pending", { hasText: "Written while offline" }).waitFor({ timeout: WAIT });
  await ben.page.screenshot({ path: `${shots}/offline.png` });
  // Meanwhile Ann sends, edits and deletes.
  await send(ann, "First while Ben is away");
  await send(ann, "Second, to be edited");
  await send(ann, "Third, to be deleted");
  await message(ann, "Third, to be deleted").locator("[data-action=delete]").waitFor({ timeout: WAIT });
  await message(ann, "Second, to be edited").locator("[data-action=edit]").click();
  await ann.page.fill("#composer", "Second, edited");
  await ann.page.press("#composer", "Enter");
  await message(ann, "Second, edited").locator(".edited").waitFor({ timeout: WAIT });
  await message(ann, "Third, to be deleted").locator("[data-action=delete]").click();
  await ann.page.locator("#messages li.deleted").last().waitFor({ timeout: WAIT });
  // Ann's edit of the first group message, to an older one than Ben's resume point.
  await ben.online();
  await ben.page.locator("#banner").waitFor({ state: "hidden", timeout: 40_000 });
  await message(ann, "Written while offline").waitFor({ timeout: WAIT });
  await message(ben, "Second, edited").waitFor({ timeout: WAIT });
  await ben.page.locator("li.pending").waitFor({ state: "detached", timeout: WAIT });
  const annSees = await transcript(ann);
  const benSees = await transcript(ben);
  assert.deepEqual(benSees, annSees, "Ben's history after coming back equals Ann's");
  assert.equal(annSees.filter((m) => m.text === "Written while offline").length, 1, "the offline send landed once");
  assert.ok(annSees.some((m) => m.text === "This message was deleted"));
  assert.ok(!annSees.some((m) => m.text.includes("to be deleted") || m.text.includes("to be edited")));

  // Carl is added and sees the group appear, without a reload, with its history.
  await addToGroup(ann, carl);
  await chatButton(carl, group).waitFor({ timeout: WAIT });
  await chatButton(carl, group).click();
  // A group a student created shows new members only what is sent after they joined
  // (history visibility `since_join`, docs/security.md).
  await send(ann, "Welcome Carl");
  await message(carl, "Welcome Carl").waitFor({ timeout: WAIT });
  assert.equal(await message(carl, "Written while offline").count(), 0, "Carl sees what was sent before he joined");
  assert.equal(await message(carl, "Hello Ben").count(), 0, "Carl sees what was sent before he joined");

  // A long history, then a fresh page of Ben's: it shows the newest messages and brings
  // the older ones back as he scrolls up.
  const chatId = await chatButton(ann, group).getAttribute("data-chat-id");
  const posted = await ann.page.evaluate(
    async ({ chatId, userId, name, count }) => {
      const minted = await fetch("/api/dev/token", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ user_id: userId, name }),
      }).then((r) => r.json());
      let ok = 0;
      for (let i = 0; i < count; i += 1) {
        const response = await fetch(`/api/chats/${chatId}/messages`, {
          method: "POST",
          headers: { authorization: `Bearer ${minted.token}`, "content-type": "application/json" },
          body: JSON.stringify({ client_msg_id: `bulk-${i}`, text: `bulk ${i}` }),
        });
        if (response.status === 201) ok += 1;
      }
      return ok;
    },
    { chatId, userId: ann.id, name: ann.name, count: 70 },
  );
  assert.equal(posted, 70);
  await message(ben, "bulk 69").waitFor({ timeout: WAIT });
  const fresh = await user("ben", "Ben");
  await chatButton(fresh, group).click();
  await message(fresh, "bulk 69").waitFor({ timeout: WAIT });
  assert.equal(await message(fresh, "Hello Ben").count(), 0, "a fresh page starts with the newest page only");
  const deadline = Date.now() + WAIT;
  while ((await message(fresh, "Hello Ben").count()) === 0) {
    assert.ok(Date.now() < deadline, "scrolling up brought no older messages");
    // Down a little and back to the top, so that every round is a scroll event.
    await fresh.page.locator(".scroller").evaluate((element) => {
      element.scrollTo(0, 80);
      requestAnimationFrame(() => element.scrollTo(0, 0));
    });
    await fresh.page.waitForTimeout(200);
  }
  assert.deepEqual(await transcript(fresh), await transcript(ann), "scrolled back, the fresh page holds the whole history");

  // Phone width: one pane at a time, back to the list.
  await ben.page.setViewportSize({ width: 390, height: 760 });
  await ben.page.screenshot({ path: `${shots}/phone-chat.png` });
  await ben.page.click(".back");
  await chatButton(ben, group).waitFor({ timeout: WAIT });
  await ben.page.screenshot({ path: `${shots}/phone-list.png` });

  for (const u of [ann, ben, carl, fresh]) assert.deepEqual(u.errors, [], `${u.id}'s page threw`);
});

test("a send refused while away is shown failed, and Retry stores it exactly once", async () => {
  const dora = await user("dora", "Dora");
  const eli = await user("eli", "Eli");
  const group = `Chemistry ${run}`;
  const text = "Written while removed";
  await createGroup(dora, group, [eli]);
  const chatId = await chatButton(dora, group).getAttribute("data-chat-id");
  await chatButton(eli, group).click();
  await eli.page.locator("#chat-title", { hasText: group }).waitFor({ timeout: WAIT });

  // Eli writes while away; meanwhile Dora removes him from the group.
  await eli.offline();
  await eli.page.locator("#banner", { hasText: "reconnecting" }).waitFor({ timeout: WAIT });
  await send(eli, text);
  await eli.page.locator("li.pending", { hasText: text }).waitFor({ timeout: WAIT });
  const removed = await rest(dora, "DELETE", `/api/chats/${chatId}/participants/${eli.id}`);
  assert.ok(removed.status < 300, `removing Eli: ${JSON.stringify(removed)}`);

  // Back online, his resume drops the chat and his outbox's send is refused for good.
  await eli.online();
  await chatButton(eli, group).waitFor({ state: "detached", timeout: 40_000 });
  const refused = (f) => f.includes('"type":"error"') && /"code":"(forbidden|not_found)"/.test(f);
  await until("the refusal of Eli's send", () => eli.frames.some(refused));

  // Dora adds him back; the chat shows his send as failed, and Retry stores it.
  await addToGroup(dora, eli);
  await chatButton(eli, group).click({ timeout: WAIT });
  const failed = eli.page.locator("li.pending.failed", { hasText: text });
  await failed.locator("[data-action=retry]").click({ timeout: WAIT });
  await message(dora, text).waitFor({ timeout: WAIT });
  await eli.page.locator("li.msg:not(.pending)", { hasText: text }).waitFor({ timeout: WAIT });
  await eli.page.locator("li.pending").waitFor({ state: "detached", timeout: WAIT });
  await eli.page.screenshot({ path: `${shots}/retried.png` });

  // Exactly once: on both pages and in the stored history.
  for (const u of [dora, eli]) {
    const seen = (await transcript(u)).filter((m) => m.text === text);
    assert.equal(seen.length, 1, `${u.id} sees the retried send once`);
  }
  const history = await rest(dora, "GET", `/api/chats/${chatId}/messages?limit=100`);
  assert.equal(history.status, 200, JSON.stringify(history));
  assert.equal(history.body.items.filter((m) => m.text === text).length, 1, "the retried send is stored once");
  for (const u of [dora, eli]) assert.deepEqual(u.errors, [], `${u.id}'s page threw`);
});

/** A REST call as `u` with the platform role `teacher`, which must answer 200. */
async function restAsTeacher(u, method, path, body) {
  const minted = await fetch(`${base}/api/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_id: u.id, name: u.name, roles: ["teacher"] }),
  });
  const { token } = await minted.json();
  const answer = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await answer.text();
  assert.equal(answer.status, 200, `${method} ${path}: ${text}`);
  return JSON.parse(text);
}

test("the composer says why it is disabled: frozen, announcement, muted, and opens again", async () => {
  const tom = await user("tom", "Tom");
  const kay = await user("kay", "Kay");
  const group = `Class ${run}`;
  await createGroup(tom, group, [kay]);
  await chatButton(kay, group).waitFor({ timeout: WAIT });
  await chatButton(kay, group).click();
  const reason = kay.page.locator("#composer-blocked");
  assert.equal(await kay.page.locator("#composer").isDisabled(), false);

  const id = await chatButton(tom, group).getAttribute("data-chat-id");
  await restAsTeacher(tom, "PATCH", `/api/chats/${id}/moderation`, { frozen: true });
  await reason.getByText("frozen").waitFor({ timeout: WAIT });
  assert.equal(await kay.page.locator("#composer").isDisabled(), true);
  await tom.page.locator("#composer-blocked", { hasText: "frozen" }).waitFor({ timeout: WAIT });

  await restAsTeacher(tom, "PATCH", `/api/chats/${id}/moderation`, { frozen: false, posting: "admins" });
  await reason.getByText("owner and admins").waitFor({ timeout: WAIT });
  // The owner's page hears the same change: the freeze's reason goes, and none replaces it.
  await tom.page.locator("#composer-blocked").waitFor({ state: "hidden", timeout: WAIT });
  assert.equal(await tom.page.locator("#composer").isDisabled(), false, "the owner posts in an announcement chat");
  await kay.page.screenshot({ path: `${shots}/announcement.png` });

  await restAsTeacher(tom, "PATCH", `/api/chats/${id}/moderation`, { posting: "everyone" });
  const until = new Date(Date.now() + 10 * 60_000).toISOString();
  await restAsTeacher(tom, "PUT", `/api/chats/${id}/participants/${kay.id}/mute`, { until });
  await reason.getByText("muted until").waitFor({ timeout: WAIT });
  await restAsTeacher(tom, "PUT", `/api/chats/${id}/participants/${kay.id}/mute`, { until: null });
  await reason.waitFor({ state: "hidden", timeout: WAIT });
  await send(kay, "Thank you");
  await message(tom, "Thank you").waitFor({ timeout: WAIT });
  assert.deepEqual([...tom.errors, ...kay.errors], []);
  await tom.context.close();
  await kay.context.close();
});
