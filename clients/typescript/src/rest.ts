/**
 * The REST calls the SDK makes (`fetch`, with a fresh token from the provider): the
 * chat list with read marks and unread counts, history pages, and chat management.
 * @module
 */

import type { Chat, ChatListItem, ChatMode, ErrorCode, Message, Page, Role } from "./protocol.js";

/** A REST call that failed: the API's error code and the HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | "network",
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Which page of history to read. */
export interface HistoryQuery {
  /** Messages before this seq, newest first (the default: the newest messages). */
  before_seq?: number;
  /** Messages after this seq, oldest first. */
  after_seq?: number;
  /** At most this many (the server allows 200). */
  limit?: number;
  /** The previous page's `next_cursor`. */
  cursor?: string;
}

/** What `POST /api/chats` takes. */
export type CreateChat =
  | { type: "direct"; member_id: string }
  | { type: "group"; title: string; member_ids?: string[]; external_id?: string };

/** The api's routes, typed. */
export class Rest {
  constructor(
    private readonly baseUrl: string,
    private readonly token: () => Promise<string>,
    private readonly fetchImpl: typeof fetch = globalThis.fetch.bind(globalThis),
  ) {}

  /** One page of the caller's chats, most recent activity first. */
  listChats(cursor?: string, limit = 200): Promise<Page<ChatListItem>> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    return this.call("GET", `/api/chats?${query}`);
  }

  /** Every chat of the caller, all pages. */
  async allChats(): Promise<ChatListItem[]> {
    const items: ChatListItem[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.listChats(cursor);
      items.push(...page.items);
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    return items;
  }

  /** A page of a chat's history (tombstones included). */
  history(chatId: string, query: HistoryQuery = {}): Promise<Page<Message>> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) params.set(key, String(value));
    }
    return this.call("GET", `/api/chats/${encodeURIComponent(chatId)}/messages?${params}`);
  }

  /** Creates a direct chat (or returns the existing one) or a group. */
  createChat(body: CreateChat): Promise<Chat> {
    return this.call("POST", "/api/chats", body);
  }

  /** Renames a group. */
  renameChat(chatId: string, title: string): Promise<Chat> {
    return this.call("PATCH", `/api/chats/${encodeURIComponent(chatId)}`, { title });
  }

  /** Adds members or changes their role. */
  addMembers(chatId: string, userIds: string[], role: Role = "member"): Promise<Chat> {
    return this.call("POST", `/api/chats/${encodeURIComponent(chatId)}/participants`, { user_ids: userIds, role });
  }

  /** Changes a chat's mode (owners, admins, platform admins); fields left out keep their value. */
  moderateChat(chatId: string, change: Partial<ChatMode>): Promise<Chat> {
    return this.call("PATCH", `/api/chats/${encodeURIComponent(chatId)}/moderation`, change);
  }

  /** Mutes a member until `until` (RFC 3339), or unmutes them with `null`. */
  muteMember(chatId: string, userId: string, until: string | null): Promise<Chat> {
    const path = `/api/chats/${encodeURIComponent(chatId)}/participants/${encodeURIComponent(userId)}/mute`;
    return this.call("PUT", path, { until });
  }

  /** Removes a member (or leaves, with one's own id). */
  async removeMember(chatId: string, userId: string): Promise<void> {
    await this.call("DELETE", `/api/chats/${encodeURIComponent(chatId)}/participants/${encodeURIComponent(userId)}`);
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${await this.token()}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    let response: Response;
    try {
      const init: RequestInit = { method, headers };
      if (body !== undefined) init.body = JSON.stringify(body);
      response = await this.fetchImpl(`${this.baseUrl}${path}`, init);
    } catch (error) {
      throw new ApiError(0, "network", `${method} ${path}: ${String(error)}`);
    }
    const text = await response.text();
    const json: unknown = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const error = (json as { error?: { code?: ErrorCode; message?: string } } | null)?.error;
      throw new ApiError(response.status, error?.code ?? "internal", `${method} ${path}: ${error?.message ?? response.status}`);
    }
    return json as T;
  }
}
