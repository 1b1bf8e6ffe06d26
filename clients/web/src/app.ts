/**
 * The signed-in app: one `ChatClient` (the SDK keeps the state, the outbox and the
 * resume), the chat list on the left, the open chat on the right (one at a time at
 * phone width), the reconnect banner on top. Every SDK event schedules one re-render
 * of the list and the open chat's messages per frame; the composer is never rebuilt,
 * so typing is not disturbed.
 */

import { ChatClient, type Message, SendError } from "@edu-chat/client";
import { ChatPane } from "./chatpane.js";
import { renderChatList } from "./chatlist.js";
import { Directory } from "./directory.js";
import { h } from "./dom.js";
import { PeoplePanel } from "./people.js";
import { type Identity, devTokens, forget } from "./session.js";

/** Where the service is. */
export interface Urls {
  apiUrl: string;
  wsUrl: string;
}

/** What the views read and call: the client plus what only the page knows. */
export interface AppContext {
  client: ChatClient;
  directory: Directory;
  me: Identity;
  /** Sends that the server refused for good, by `client_msg_id`, until retried or dropped. */
  failed: Map<string, SendError>;
  render: () => void;
  open: (chatId: string | undefined) => void;
}

/** Starts the app in `root`; `signedOut` runs after the user signs out. */
export function startApp(root: HTMLElement, urls: Urls, me: Identity, signedOut: () => void): void {
  const token = devTokens(urls.apiUrl, me);
  const client = new ChatClient({ url: urls.wsUrl, apiUrl: urls.apiUrl, token });
  let scheduled = false;
  const render = (): void => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      draw();
    });
  };
  const directory = new Directory(urls.apiUrl, token, render);
  directory.learn(me.userId, me.name);
  let openChat: string | undefined;
  const context: AppContext = {
    client,
    directory,
    me,
    failed: new Map(),
    render,
    open: (chatId) => {
      openChat = chatId;
      layout.classList.toggle("chat-open", !!chatId);
      pane.show(chatId);
      render();
    },
  };

  const banner = h("div", { id: "banner", class: "banner", role: "status", "aria-live": "polite" }, "Connecting…");
  const list = h("nav", { id: "chat-list", class: "chat-list", "aria-label": "Chats" });
  const people = new PeoplePanel(context);
  const pane = new ChatPane(context, people);
  const signOut = h("button", { type: "button", id: "sign-out", class: "quiet", onclick: () => {
    client.close();
    forget();
    signedOut();
  } }, "Sign out");
  const newChat = h("button", { type: "button", id: "new-chat", onclick: () => people.openForNewChat() }, "New chat");
  const layout = h(
    "div",
    { class: "layout" },
    h("aside", { class: "sidebar" }, h("div", { class: "sidebar-head" }, newChat), people.element, list),
    pane.element,
  );
  root.replaceChildren(
    h("header", { class: "top" }, h("strong", {}, "edu-chat"), h("span", { id: "whoami", class: "whoami" }, `${me.name} (${me.userId})`), signOut),
    banner,
    layout,
  );

  let watched = "";
  const draw = (): void => {
    const views = client.chats();
    // Presence of everyone the user shares a chat with (the edge allows 200).
    const ids = [...new Set(views.flatMap((view) => view.participants.map((p) => p.user_id)))]
      .filter((id) => id !== me.userId)
      .sort()
      .slice(0, 200);
    if (ids.join(",") !== watched && client.isSynced) {
      watched = ids.join(",");
      client.watchPresence(ids);
    }
    renderChatList(list, context, views, openChat);
    pane.render();
  };

  client.on("connected", () => render());
  client.on("synced", () => {
    banner.hidden = true;
    render();
  });
  client.on("disconnected", ({ retryInMs }) => {
    banner.hidden = false;
    banner.textContent = retryInMs === undefined ? "Connection lost." : "Connection lost: reconnecting…";
  });
  client.on("authError", (error) => {
    banner.hidden = false;
    banner.textContent = `Cannot sign in: ${error.message}`;
  });
  for (const name of ["chat", "message", "typing", "presence", "read", "sent"] as const) client.on(name, render);
  client.on("chatRemoved", (chatId) => {
    if (chatId === openChat) context.open(undefined);
    render();
  });
  client.on("sendFailed", (error) => {
    context.failed.set(error.pending.client_msg_id, error);
    render();
  });
  client.connect().catch((error: unknown) => {
    banner.hidden = false;
    banner.textContent = `Cannot connect: ${String(error)}`;
  });
  document.addEventListener("visibilitychange", render);
  render();
}

/** The newest message that is not deleted, for list previews. */
export function lastVisible(messages: Message[]): Message | undefined {
  for (let i = messages.length - 1; i >= 0; i -= 1) {
    const message = messages[i];
    if (message && !message.deleted_at) return message;
  }
  return undefined;
}
