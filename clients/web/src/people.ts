/**
 * The people panel: search the directory, then start a direct chat with one user,
 * create a group of the ones ticked, or (for an open group) add them to it.
 */

import type { AppContext } from "./app.js";
import type { User } from "./directory.js";
import { h } from "./dom.js";

/** The panel above the chat list. */
export class PeoplePanel {
  readonly element: HTMLElement;
  private readonly query = h("input", { id: "people-search", type: "search", placeholder: "Search people by name or id", "aria-label": "Search people" });
  private readonly results = h("ul", { id: "people-results", class: "people-results" });
  private readonly title = h("input", { id: "group-title", placeholder: "Group name", maxlength: "200", "aria-label": "Group name" });
  private readonly heading = h("h2", {});
  private readonly submit = h("button", { type: "button", id: "people-submit" });
  private readonly error = h("p", { class: "error", role: "alert" });
  private readonly picked = new Map<string, User>();
  /** The group to add people to, or undefined to create a chat. */
  private target: string | undefined;
  private searchTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly context: AppContext) {
    this.query.addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => void this.search(), 200);
    });
    this.submit.addEventListener("click", () => void this.finish());
    this.element = h(
      "section",
      {
        id: "people",
        class: "people",
        hidden: true,
        onkeydown: (event) => {
          if ((event as KeyboardEvent).key === "Escape") this.close();
        },
      },
      this.heading,
      this.query,
      this.results,
      this.title,
      h("div", { class: "row" }, this.submit, h("button", { type: "button", class: "quiet", onclick: () => this.close() }, "Cancel")),
      this.error,
    );
  }

  /** Opens the panel to start a direct chat or create a group. */
  openForNewChat(): void {
    this.reset(undefined, "New chat", "Create group");
  }

  /** Opens the panel to add people to a group. */
  openForGroup(chatId: string): void {
    this.reset(chatId, "Add people", "Add to group");
  }

  private reset(target: string | undefined, heading: string, submit: string): void {
    this.target = target;
    this.picked.clear();
    this.heading.textContent = heading;
    this.submit.textContent = submit;
    this.title.hidden = target !== undefined;
    this.title.value = "";
    this.query.value = "";
    this.results.replaceChildren();
    this.error.textContent = "";
    this.element.hidden = false;
    this.query.focus();
  }

  private close(): void {
    this.element.hidden = true;
  }

  private async search(): Promise<void> {
    try {
      const users = (await this.context.directory.search(this.query.value)).filter((u) => u.id !== this.context.me.userId);
      this.results.replaceChildren(...users.map((user) => this.row(user)));
      if (users.length === 0 && this.query.value.trim()) this.results.append(h("li", { class: "empty" }, "Nobody found (people appear once they have signed in)."));
    } catch (error) {
      this.error.textContent = String(error);
    }
  }

  private row(user: User): HTMLElement {
    const box = h("input", { type: "checkbox", id: `pick-${user.id}`, "data-user-id": user.id });
    box.checked = this.picked.has(user.id);
    box.addEventListener("change", () => {
      if (box.checked) this.picked.set(user.id, user);
      else this.picked.delete(user.id);
    });
    return h(
      "li",
      {},
      box,
      h("label", { for: `pick-${user.id}` }, `${user.name} (${user.id})`),
      this.target === undefined
        ? h("button", { type: "button", class: "quiet", "data-direct": user.id, onclick: () => void this.direct(user.id) }, "Message")
        : null,
    );
  }

  private async direct(userId: string): Promise<void> {
    await this.run(async () => {
      const chat = await this.context.client.api.createChat({ type: "direct", member_id: userId });
      this.close();
      await this.opened(chat.id);
    });
  }

  private async finish(): Promise<void> {
    const ids = [...this.picked.keys()];
    await this.run(async () => {
      if (this.target !== undefined) {
        if (ids.length === 0) throw new Error("tick the people to add");
        await this.context.client.api.addMembers(this.target, ids);
        this.close();
        return;
      }
      const title = this.title.value.trim();
      if (!title) throw new Error("a group needs a name");
      const chat = await this.context.client.api.createChat({ type: "group", title, member_ids: ids });
      this.close();
      await this.opened(chat.id);
    });
  }

  /** Opens a chat as soon as the client holds it (its event follows the REST answer). */
  private async opened(chatId: string): Promise<void> {
    if (!this.context.client.chat(chatId)) {
      await Promise.race([
        this.context.client.once("chat", (view) => view.id === chatId),
        new Promise((resolve) => setTimeout(resolve, 5000)),
      ]);
    }
    this.context.open(chatId);
  }

  private async run(action: () => Promise<void>): Promise<void> {
    this.error.textContent = "";
    try {
      await action();
    } catch (error) {
      this.error.textContent = error instanceof Error ? error.message : String(error);
    }
  }
}
