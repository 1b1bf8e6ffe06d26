/**
 * Development sign-in: the api's `POST /api/dev/token` (present only when the api runs
 * with `CHAT_DEV_TOKENS` and the public development secret) signs a token for any user
 * id and name. The identity is kept per tab (sessionStorage), the recent ones for the
 * pick list (localStorage); the token is asked for again shortly before it expires.
 */

/** Who the tab is signed in as. */
export interface Identity {
  userId: string;
  name: string;
  role: "student" | "teacher";
}

const CURRENT = "edu-chat.identity";
const RECENT = "edu-chat.recent";

/** The tab's identity, if it signed in before. */
export function savedIdentity(): Identity | undefined {
  return parse(sessionStorage.getItem(CURRENT));
}

/** Identities signed in with on this browser, newest first. */
export function recentIdentities(): Identity[] {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT) ?? "[]") as unknown;
    return Array.isArray(list) ? list.map((item) => parse(JSON.stringify(item))).filter((i): i is Identity => !!i) : [];
  } catch {
    return [];
  }
}

/** Remembers the identity for this tab and the pick list. */
export function remember(identity: Identity): void {
  sessionStorage.setItem(CURRENT, JSON.stringify(identity));
  const others = recentIdentities().filter((i) => i.userId !== identity.userId);
  localStorage.setItem(RECENT, JSON.stringify([identity, ...others].slice(0, 8)));
}

/** Signs the tab out. */
export function forget(): void {
  sessionStorage.removeItem(CURRENT);
}

function parse(text: string | null): Identity | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<Identity>;
    if (typeof value.userId === "string" && typeof value.name === "string") {
      return { userId: value.userId, name: value.name, role: value.role === "teacher" ? "teacher" : "student" };
    }
  } catch {
    // A damaged entry is as good as none.
  }
  return undefined;
}

/** A token provider for the SDK: a development token, renewed a minute before expiry. */
export function devTokens(apiUrl: string, identity: Identity): () => Promise<string> {
  let current: { token: string; expiresAt: number } | undefined;
  let pending: Promise<string> | undefined;
  return async () => {
    if (current && current.expiresAt - 60 > Date.now() / 1000) return current.token;
    pending ??= mint(apiUrl, identity)
      .then((minted) => {
        current = minted;
        return minted.token;
      })
      .finally(() => {
        pending = undefined;
      });
    return pending;
  };
}

/** Asks the api for a token; fails with the api's message (404: dev tokens are off). */
export async function mint(apiUrl: string, identity: Identity): Promise<{ token: string; expiresAt: number }> {
  const response = await fetch(`${apiUrl}/api/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ user_id: identity.userId, name: identity.name, roles: [identity.role] }),
  });
  if (response.status === 404) throw new Error("this api has no development sign-in (start it with CHAT_DEV_TOKENS)");
  const body = (await response.json().catch(() => null)) as
    | { token?: string; expires_at?: number; error?: { message?: string } }
    | null;
  if (!response.ok || !body?.token) throw new Error(body?.error?.message ?? `sign-in failed (${response.status})`);
  return { token: body.token, expiresAt: body.expires_at ?? 0 };
}
