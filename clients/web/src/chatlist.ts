/** The chat list: title, presence of a direct chat's partner, last message, unread badge. */

import type { ChatView } from "@edu-chat/client";
import { type AppContext, lastVisible } from "./app.js";
import { h } from "./dom.js";

/** A chat's title as the user sees it: a direct chat is named after the other member. */
export function chatTitle(context: AppContext, view: ChatView): string {
  if (view.chat.type === "direct") {
    const other = view.participants.find((p) => p.user_id !== context.me.userId);
    return other ? context.directory.name(other.user_id) : "(direct chat)";
  }
  return view.title ?? "(untitled group)";
}

/** A presence dot for a user: green online, grey offline or unknown (while disconnected). */
export function presenceDot(context: AppContext, userId: string): HTMLElement {
  const online = context.client.isSynced && context.client.presence(userId)?.status === "online";
  return h("span", { class: online ? "dot online" : "dot", title: online ? "online" : "offline", "aria-label": online ? "online" : "offline" });
}

/** Redraws the list in `list`, most recent activity first. */
export function renderChatList(list: HTMLElement, context: AppContext, views: ChatView[], openChat: string | undefined): void {
  const items = views
    .map((view) => {
      const last = lastVisible(context.client.messages(view.id));
      const at = last?.created_at ?? view.chat.last_message?.created_at ?? view.chat.created_at;
      return { view, last, at };
    })
    .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
  if (items.length === 0) {
    list.replaceChildren(h("p", { class: "empty" }, "No chats yet: start one with New chat."));
    return;
  }
  list.replaceChildren(
    h(
      "ul",
      {},
      ...items.map(({ view, last }) => {
        const other = view.chat.type === "direct" ? view.participants.find((p) => p.user_id !== context.me.userId) : undefined;
        const preview = last
          ? `${last.sender_id === context.me.userId ? "You" : context.directory.name(last.sender_id)}: ${last.text}`
          : view.chat.last_message?.text ?? "No messages yet";
        return h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: view.id === openChat ? "chat-item active" : "chat-item",
              "data-chat-id": view.id,
              "aria-current": view.id === openChat ? "true" : "false",
              onclick: () => context.open(view.id),
            },
            h("span", { class: "chat-title" }, other ? presenceDot(context, other.user_id) : null, chatTitle(context, view)),
            view.unreadCount > 0 ? h("span", { class: "badge", "aria-label": `${view.unreadCount} unread` }, String(view.unreadCount)) : null,
            h("span", { class: "preview" }, preview),
          ),
        );
      }),
    ),
  );
}
