/**
 * `@edu-chat/client`: the edu-chat SDK for browsers and Node 20+.
 *
 * - `ChatClient` (client.ts): connect, state, sends, live signals.
 * - connection.ts: sockets, heartbeats, token refresh, reconnects; backoff.ts: delays.
 * - resume.ts: the gap-free resume after every connect; state.ts: the merge rules.
 * - outbox.ts: sends kept until stored; typing.ts: typing both ways.
 * - rest.ts: the REST calls; protocol.ts: every wire shape.
 * - moderation.ts: why the user may not post in a chat right now.
 * @module
 */

export { ChatClient, type ClientEvents, type ClientOptions, type MessageChange } from "./client.js";
export { CommandError } from "./commands.js";
export type { BackoffOptions } from "./backoff.js";
export type { Emitter, Listener } from "./emitter.js";
export { type OutboxStore, type PendingSend, SendError } from "./outbox.js";
export { type PostingBlock, postingBlock } from "./moderation.js";
export { ApiError, type CreateChat, type HistoryQuery, Rest } from "./rest.js";
export type { ChatView } from "./state.js";
export type { SocketFactory, SocketLike } from "./socket.js";
export { TYPING_TTL_MS } from "./typing.js";
export * from "./protocol.js";
