/**
 * The open chat: its members with presence dots, the messages (older ones paged in
 * over REST when scrolled to the top), the user's pending sends (sending, or failed
 * with retry), who is typing, who has seen the user's last message, and the composer
 * (Enter sends, Shift+Enter is a new line, Up edits the last own message, Escape
 * cancels an edit), which is disabled with the reason shown while the chat is frozen,
 * is an announcement chat the user may not post in, or the user is muted. Reading the
 * chat while the page is visible moves the read mark.
 */

import { type ChatView, type Message, type PendingSend, type PostingBlock, postingBlock } from "@edu-chat/client";
import type { AppContext } from "./app.js";
import { chatTitle, presenceDot } from "./chatlist.js";
import { h, linkified, shortTime } from "./dom.js";
import type { PeoplePanel } from "./people.js";

/** How many messages one scroll-back page brings. */
const PAGE = 50;

/** The right-hand pane. */
export class ChatPane {
  readonly element: HTMLElement;
  private readonly title = h("h2", { id: "chat-title" });
  private readonly members = h("p", { id: "members", class: "members" });
  private readonly addPeople = h("button", { type: "button", id: "add-people", class: "quiet" }, "Add people");
  private readonly older = h("button", { type: "button", id: "load-older", class: "quiet" }, "Load older messages");
  private readonly list = h("ol", { id: "messages", class: "messages", "aria-live": "polite" });
  private readonly scroller = h("div", { class: "scroller" }, this.older, this.list);
  private readonly typingLine = h("p", { id: "typing", class: "typing", "aria-live": "polite" });
  private readonly editBar = h("p", { id: "editing", class: "editing", hidden: true });
  private readonly composer = h("textarea", { id: "composer", rows: "2", placeholder: "Write a message", "aria-label": "Message" });
  private readonly sendButton = h("button", { type: "submit", id: "send" }, "Send");
  private readonly blocked = h("p", { id: "composer-blocked", class: "hint blocked", "aria-live": "polite", hidden: true });
  private readonly error = h("p", { class: "error", role: "alert" });
  /** Redraws the composer when a mute runs out. */
  private muteTimer: ReturnType<typeof setTimeout> | undefined;
  private chatId: string | undefined;
  private editing: Message | undefined;
  /** Chats whose whole history is held. */
  private readonly complete = new Set<string>();
  private loadingOlder = false;
  private marking = false;

  constructor(
    private readonly context: AppContext,
    people: PeoplePanel,
  ) {
    this.addPeople.addEventListener("click", () => this.chatId && people.openForGroup(this.chatId));
    this.older.addEventListener("click", () => void this.loadOlder());
    this.scroller.addEventListener("scroll", () => {
      if (this.scroller.scrollTop < 40) void this.loadOlder();
    });
    this.composer.addEventListener("keydown", (event) => this.key(event));
    this.composer.addEventListener("input", () => {
      if (!this.chatId) return;
      if (this.composer.value.trim()) this.context.client.typing(this.chatId);
      else this.context.client.stopTyping(this.chatId);
    });
    const back = h("button", { type: "button", class: "quiet back", "aria-label": "Back to chats", onclick: () => context.open(undefined) }, "←");
    const form = h(
      "form",
      {
        class: "composer",
        onsubmit: (event) => {
          event.preventDefault();
          void this.submit();
        },
      },
      this.composer,
      this.sendButton,
    );
    this.element = h(
      "main",
      { id: "chat", class: "chat", hidden: true },
      h("div", { class: "chat-head" }, back, h("div", {}, this.title, this.members), this.addPeople),
      this.scroller,
      this.typingLine,
      this.editBar,
      this.blocked,
      form,
      this.error,
    );
  }

  /** Shows a chat (or none). */
  show(chatId: string | undefined): void {
    if (chatId === this.chatId) return;
    this.chatId = chatId;
    this.cancelEdit();
    this.error.textContent = "";
    this.element.hidden = !chatId;
    this.list.replaceChildren();
    if (!chatId) return;
    this.composer.value = "";
    this.composer.focus();
    // A fresh client holds messages from the read mark on; show a screenful.
    if (this.context.client.messages(chatId).filter((m) => !m.deleted_at).length < PAGE) void this.loadOlder();
  }

  /** Redraws the open chat from the client's state. */
  render(): void {
    const chatId = this.chatId;
    const view = chatId ? this.context.client.chat(chatId) : undefined;
    if (!chatId || !view) return;
    const { client, directory, me } = this.context;
    this.title.textContent = chatTitle(this.context, view);
    this.members.replaceChildren(
      ...view.participants.flatMap((p) => [
        h("span", { class: "member", "data-user-id": p.user_id }, p.user_id === me.userId ? null : presenceDot(this.context, p.user_id), p.user_id === me.userId ? "You" : directory.name(p.user_id)),
        " ",
      ]),
    );
    this.addPeople.hidden = view.chat.type !== "group";
    const messages = client.messages(chatId);
    this.older.hidden = this.complete.has(chatId);
    const atBottom = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 60;
    const stored = new Set(messages.map((m) => m.client_msg_id));
    const pending = client.pendingSends().filter((p) => p.chat_id === chatId && !stored.has(p.client_msg_id));
    const failed = [...this.context.failed.values()].map((f) => f.pending).filter((p) => p.chat_id === chatId && !stored.has(p.client_msg_id));
    const lastOwn = [...messages].reverse().find((m) => m.sender_id === me.userId && !m.deleted_at);
    this.list.replaceChildren(
      ...messages.map((message) => this.message(message, message === lastOwn ? this.seenBy(view, message) : undefined)),
      ...pending.filter((p) => !this.context.failed.has(p.client_msg_id)).map((p) => this.pending(p, false)),
      ...failed.map((p) => this.pending(p, true)),
    );
    if (atBottom) this.scroller.scrollTop = this.scroller.scrollHeight;
    const typists = client.typists(chatId).filter((id) => id !== me.userId).map((id) => directory.name(id));
    this.typingLine.textContent =
      typists.length === 0 ? "" : `${typists.join(", ")} ${typists.length === 1 ? "is" : "are"} typing…`;
    this.renderComposer(view);
    this.markRead(view);
  }

  /** Disables the composer, saying why, while the user may not post. */
  private renderComposer(view: ChatView): void {
    const block = postingBlock(view);
    this.composer.disabled = block !== undefined;
    this.sendButton.disabled = block !== undefined;
    this.blocked.hidden = block === undefined;
    this.blocked.textContent = block ? blockReason(block) : "";
    this.composer.placeholder = block ? "" : "Write a message";
    clearTimeout(this.muteTimer);
    if (block?.reason === "muted") {
      const left = Math.min(Date.parse(block.until) - Date.now() + 500, 2 ** 31 - 1);
      this.muteTimer = setTimeout(() => this.render(), Math.max(left, 0));
    }
  }

  private message(message: Message, seenBy: string | undefined): HTMLElement {
    const { me, directory } = this.context;
    const mine = message.sender_id === me.userId;
    const deleted = !!message.deleted_at;
    return h(
      "li",
      { class: `msg${mine ? " mine" : ""}${deleted ? " deleted" : ""}`, "data-seq": String(message.seq), "data-id": message.id },
      h(
        "div",
        { class: "meta" },
        h("span", { class: "sender" }, mine ? "You" : directory.name(message.sender_id)),
        h("time", { datetime: message.created_at }, shortTime(message.created_at)),
        message.edited_at && !deleted ? h("span", { class: "edited" }, "edited") : null,
      ),
      deleted
        ? h("p", { class: "text tombstone" }, "This message was deleted")
        : h("p", { class: "text" }, linkified(message.text)),
      mine && !deleted
        ? h(
            "div",
            { class: "actions" },
            h("button", { type: "button", class: "quiet", "data-action": "edit", onclick: () => this.startEdit(message) }, "Edit"),
            h("button", { type: "button", class: "quiet", "data-action": "delete", onclick: () => void this.remove(message) }, "Delete"),
          )
        : null,
      seenBy ? h("p", { class: "seen" }, seenBy) : null,
    );
  }

  private pending(send: PendingSend, failed: boolean): HTMLElement {
    const status = failed
      ? h("span", { class: "status failed" }, `Failed: ${this.context.failed.get(send.client_msg_id)?.code ?? "refused"}`)
      : h("span", { class: "status" }, this.context.client.isSynced ? "Sending…" : "Waiting for connection…");
    return h(
      "li",
      { class: `msg mine pending${failed ? " failed" : ""}`, "data-client-msg-id": send.client_msg_id },
      h("div", { class: "meta" }, h("span", { class: "sender" }, "You"), status),
      h("p", { class: "text" }, linkified(send.text)),
      failed
        ? h(
            "div",
            { class: "actions" },
            h("button", { type: "button", class: "quiet", "data-action": "retry", onclick: () => this.retry(send) }, "Retry"),
            h("button", { type: "button", class: "quiet", "data-action": "discard", onclick: () => this.discard(send) }, "Discard"),
          )
        : null,
    );
  }

  /** "Seen by" for the user's last message: the members whose read mark reached it. */
  private seenBy(view: ChatView, message: Message): string | undefined {
    const readers = [...view.readMarks]
      .filter(([userId, seq]) => userId !== this.context.me.userId && seq >= message.seq)
      .map(([userId]) => this.context.directory.name(userId));
    return readers.length > 0 ? `Seen by ${readers.join(", ")}` : undefined;
  }

  private markRead(view: ChatView): void {
    if (view.unreadCount === 0 || this.marking || document.visibilityState !== "visible" || !this.context.client.isSynced) return;
    this.marking = true;
    this.context.client
      .markRead(view.id)
      .catch(() => undefined)
      .finally(() => {
        this.marking = false;
        this.context.render();
      });
  }

  private async loadOlder(): Promise<void> {
    const chatId = this.chatId;
    if (!chatId || this.loadingOlder || this.complete.has(chatId)) return;
    this.loadingOlder = true;
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
    try {
      const oldest = this.context.client.messages(chatId)[0]?.seq;
      const page = await this.context.client.history(chatId, oldest === undefined ? { limit: PAGE } : { before_seq: oldest, limit: PAGE });
      if (page.items.length < PAGE || page.items.some((m) => m.seq <= 1)) this.complete.add(chatId);
      this.render();
      this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
    } catch (error) {
      this.error.textContent = `Cannot load older messages: ${String(error)}`;
    } finally {
      this.loadingOlder = false;
    }
  }

  private key(event: KeyboardEvent): void {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      void this.submit();
    } else if (event.key === "Escape" && this.editing) {
      event.preventDefault();
      this.cancelEdit();
    } else if (event.key === "ArrowUp" && !this.composer.value && this.chatId) {
      const own = [...this.context.client.messages(this.chatId)].reverse().find((m) => m.sender_id === this.context.me.userId && !m.deleted_at);
      if (own) {
        event.preventDefault();
        this.startEdit(own);
      }
    }
  }

  private async submit(): Promise<void> {
    const chatId = this.chatId;
    const text = this.composer.value.trim();
    if (!chatId || !text) return;
    this.error.textContent = "";
    const editing = this.editing;
    this.composer.value = "";
    this.context.client.stopTyping(chatId);
    if (editing) {
      this.cancelEdit();
      if (text === editing.text) return;
      try {
        await this.context.client.edit(chatId, editing.id, text);
      } catch (error) {
        this.error.textContent = `Edit failed: ${String(error)}`;
      }
      return;
    }
    // Shown as pending at once; a refusal arrives as `sendFailed`.
    this.context.client.send(chatId, text).catch(() => undefined);
    this.context.render();
  }

  private startEdit(message: Message): void {
    this.editing = message;
    this.editBar.hidden = false;
    this.editBar.textContent = "Editing a message: Enter saves, Escape cancels.";
    this.composer.value = message.text;
    this.composer.focus();
  }

  private cancelEdit(): void {
    if (this.editing) this.composer.value = "";
    this.editing = undefined;
    this.editBar.hidden = true;
  }

  private async remove(message: Message): Promise<void> {
    try {
      await this.context.client.delete(message.chat_id, message.id);
    } catch (error) {
      this.error.textContent = `Delete failed: ${String(error)}`;
    }
  }

  private retry(send: PendingSend): void {
    this.context.failed.delete(send.client_msg_id);
    this.context.client.send(send.chat_id, send.text, { clientMsgId: send.client_msg_id }).catch(() => undefined);
    this.context.render();
  }

  private discard(send: PendingSend): void {
    this.context.failed.delete(send.client_msg_id);
    this.context.render();
  }
}

/** What the composer says while the user may not post. */
function blockReason(block: PostingBlock): string {
  switch (block.reason) {
    case "frozen":
      return "This chat is frozen: it is read-only.";
    case "announcement":
      return "Only the chat's owner and admins post here.";
    case "muted":
      return `You are muted until ${shortTime(block.until)}.`;
  }
}
