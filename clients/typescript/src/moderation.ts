/**
 * Why the user may not post in a chat right now, from its mode and their mute, so a
 * composer can say so before a send is refused. The server decides; this mirrors its
 * rules (docs/policy.md): a freeze holds for everyone, owners and admins post in
 * announcement chats and are never slowed, a mute lasts until its time.
 * @module
 */

import type { Timestamp } from "./protocol.js";
import type { ChatView } from "./state.js";

/** What keeps the user from posting. */
export type PostingBlock =
  | { reason: "frozen" }
  | { reason: "announcement" }
  | { reason: "muted"; until: Timestamp };

/** Why the user may not post in `view` at `now` (ms since the epoch); undefined when they may. */
export function postingBlock(view: ChatView, now: number = Date.now()): PostingBlock | undefined {
  if (view.mode.frozen) return { reason: "frozen" };
  if (view.myRole === "owner" || view.myRole === "admin") return undefined;
  if (view.mode.posting === "admins") return { reason: "announcement" };
  if (view.mutedUntil !== undefined && Date.parse(view.mutedUntil) > now) {
    return { reason: "muted", until: view.mutedUntil };
  }
  return undefined;
}
