/**
 * The wire shapes of the WebSocket protocol and the REST API, hand-written from
 * docs/protocol.md and docs/api.md. The frames and commands are checked against the
 * edge's AsyncAPI document (docs/asyncapi-ws.json) by test/protocol.test.ts, field by
 * field, and against the server by the SDK's end-to-end test, which sees every frame
 * type below arrive.
 * @module
 */

/** RFC 3339 UTC timestamp with milliseconds, e.g. `2026-01-02T03:04:05.678Z`. */
export type Timestamp = string;

/** A member's role in a chat. */
export type Role = "member" | "admin" | "owner";

/** The error codes shared by the WebSocket protocol and the REST API. */
export type ErrorCode =
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "invalid"
  | "too_large"
  | "rate_limited"
  | "conflict"
  | "unavailable"
  | "internal";

/** A stored message; a deleted one is a tombstone with `text: ""` and `deleted_at`. */
export interface Message {
  id: string;
  chat_id: string;
  /** The chat seq of its creation. */
  seq: number;
  /** The chat seq of its latest change (creation, edit or delete). */
  updated_seq: number;
  sender_id: string;
  client_msg_id: string;
  text: string;
  reply_to: string | null;
  created_at: Timestamp;
  edited_at: Timestamp | null;
  deleted_at: Timestamp | null;
}

/** A chat member as listed inside a chat. */
export interface ChatMember {
  user_id: string;
  role: Role;
  /** Until when a moderator muted them (they read but do not send); absent when not. */
  muted_until?: Timestamp;
}

/** Who may post, how often, and whether the chat is read-only (`chat.moderate`). */
export interface ChatMode {
  /** `admins`: an announcement chat, where only owners and admins post. */
  posting: "everyone" | "admins";
  /** One message per this many seconds per member (owners and admins exempt); 0 is off. */
  slow_mode_seconds: number;
  /** Read-only for everyone: no sends, edits or deletes; read marks still move. */
  frozen: boolean;
}

/** A chat's mode before anyone moderated it. */
export const OPEN_MODE: ChatMode = { posting: "everyone", slow_mode_seconds: 0, frozen: false };

/** The newest message of a chat, as shown in lists. */
export interface LastMessage {
  id: string;
  seq: number;
  sender_id: string;
  text: string;
  created_at: Timestamp;
}

/** A chat as the server stores it. */
export interface Chat {
  id: string;
  type: "direct" | "group";
  title: string | null;
  created_by: string;
  created_at: Timestamp;
  updated_at: Timestamp;
  last_seq: number;
  last_message: LastMessage | null;
  participants: ChatMember[];
  external_id: string | null;
  /** Which history later members read: all, or nothing from before their joining. */
  history_visibility: "all" | "since_join";
  /** Who may post, slow mode, frozen. */
  mode: ChatMode;
}

/** A chat in `GET /api/chats`: the chat plus the caller's view of it. */
export interface ChatListItem extends Chat {
  unread_count: number;
  last_read_seq: number;
  my_role: Role;
}

/** A page of a REST list. */
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** The limits announced in `hello`. */
export interface Limits {
  max_frame_bytes: number;
  max_text_chars: number;
  commands_per_s: number;
  commands_burst: number;
  max_connections_per_user: number;
  idle_timeout_ms: number;
}

/** What one chat changed since the seq a `sync` named. */
export interface ChatChanges {
  /** Oldest change first. */
  messages: Message[];
  has_more: boolean;
  last_seq: number;
  /** The chat as it is now; absent for chats past the answer's byte budget. */
  chat?: Chat;
}

// ---- server → client frames ----

export interface HelloFrame {
  type: "hello";
  conn_id: string;
  user_id: string;
  heartbeat_ms: number;
  limits: Limits;
}
export interface AckFrame {
  type: "ack";
  ref: string | null;
}
export interface PongFrame {
  type: "pong";
  ref: string | null;
}
export interface ErrorFrame {
  type: "error";
  ref: string | null;
  code: ErrorCode;
  message: string;
  client_msg_id?: string;
  retry_after_ms?: number;
}
/** Fields every persisted chat event carries. */
interface Persisted {
  v: number;
  /** `<chat_id>:<seq>`. */
  id: string;
  chat_id: string;
  seq: number;
}
export interface MsgCreatedEvent extends Persisted {
  type: "msg.created";
  message: Message;
}
export interface MsgEditedEvent extends Persisted {
  type: "msg.edited";
  message: Message;
}
export interface MsgDeletedEvent extends Persisted {
  type: "msg.deleted";
  message_id: string;
  deleted_at: Timestamp;
}
export interface ChatCreatedEvent extends Persisted {
  type: "chat.created";
  chat: Chat;
}
export interface ChatUpdatedEvent extends Persisted {
  type: "chat.updated";
  chat: Chat;
}
export interface MemberAddedEvent extends Persisted {
  type: "member.added";
  user_id: string;
  role: Role;
}
export interface MemberRemovedEvent extends Persisted {
  type: "member.removed";
  user_id: string;
  role: Role;
}
export interface ChatModeratedEvent extends Persisted {
  type: "chat.moderated";
  /** The whole mode after the change. */
  mode: ChatMode;
}
export interface MemberMutedEvent extends Persisted {
  type: "member.muted";
  user_id: string;
  /** When the mute ends; `null` when unmuted. */
  until: Timestamp | null;
}
export interface ReadEvent {
  type: "read";
  chat_id: string;
  user_id: string;
  up_to_seq: number;
}
export interface TypingEvent {
  type: "typing";
  chat_id: string;
  user_id: string;
  state: "start" | "stop";
}
export interface PresenceEvent {
  type: "presence";
  user_id: string;
  status: "online" | "offline";
  last_seen: Timestamp | null;
}
export interface SyncResultFrame {
  type: "sync.result";
  ref: string | null;
  chats: Record<string, ChatChanges>;
  new_chats: Chat[];
  removed_chats: string[];
  has_more: boolean;
}
export interface ReconnectFrame {
  type: "reconnect";
  after_ms: number;
}
export interface TokenExpiringFrame {
  type: "token.expiring";
  in_ms: number;
}

/** The persisted chat events, in `CHAT_EVT` order per chat. */
export type ChatEvent =
  | MsgCreatedEvent
  | MsgEditedEvent
  | MsgDeletedEvent
  | ChatCreatedEvent
  | ChatUpdatedEvent
  | MemberAddedEvent
  | MemberRemovedEvent
  | ChatModeratedEvent
  | MemberMutedEvent;

/** Every frame the server sends. */
export type ServerFrame =
  | HelloFrame
  | AckFrame
  | PongFrame
  | ErrorFrame
  | ChatEvent
  | ReadEvent
  | TypingEvent
  | PresenceEvent
  | SyncResultFrame
  | ReconnectFrame
  | TokenExpiringFrame;

/** Every `type` a server frame may have; the end-to-end test sees each one arrive. */
export const SERVER_FRAME_TYPES = [
  "hello",
  "ack",
  "pong",
  "error",
  "msg.created",
  "msg.edited",
  "msg.deleted",
  "chat.created",
  "chat.updated",
  "member.added",
  "member.removed",
  "chat.moderated",
  "member.muted",
  "read",
  "typing",
  "presence",
  "sync.result",
  "reconnect",
  "token.expiring",
] as const satisfies readonly ServerFrame["type"][];

// Fails to compile when a frame type is missing from the list above.
type Missing = Exclude<ServerFrame["type"], (typeof SERVER_FRAME_TYPES)[number]>;
const everyFrameTypeListed: Missing extends never ? true : never = true;
void everyFrameTypeListed;

// ---- client → server commands ----

export type Command =
  | { type: "msg.send"; ref?: string; chat_id: string; client_msg_id: string; text: string; reply_to?: string | null }
  | { type: "msg.edit"; ref?: string; chat_id: string; message_id: string; text: string }
  | { type: "msg.delete"; ref?: string; chat_id: string; message_id: string }
  | { type: "typing"; ref?: string; chat_id: string; state: "start" | "stop" }
  | { type: "read"; ref?: string; chat_id: string; up_to_seq: number }
  | { type: "sync"; ref?: string; chats: Record<string, number> }
  | { type: "presence.watch"; ref?: string; user_ids: string[] }
  | { type: "auth.refresh"; ref?: string; token: string }
  | { type: "ping"; ref?: string }
  | {
      type: "chat.moderate";
      ref?: string;
      chat_id: string;
      posting?: ChatMode["posting"];
      slow_mode_seconds?: number;
      frozen?: boolean;
    }
  | { type: "member.mute"; ref?: string; chat_id: string; user_id: string; until: Timestamp | null }
  | { type: "msg.report"; ref?: string; chat_id: string; message_id: string; reason: ReportReason; note?: string | null };

/** Why a message is reported (`msg.report`). */
export type ReportReason = "spam" | "harassment" | "inappropriate" | "self_harm" | "other";

/** Close codes the server uses. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  tooLarge: 1009,
  internal: 1011,
  tokenExpired: 4001,
  forbidden: 4003,
  policy: 4008,
  slowConsumer: 4009,
  tooManyConnections: 4010,
} as const;
