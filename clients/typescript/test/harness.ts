/**
 * What the SDK's end-to-end test needs from the Rust harness (tests/tests/e2e/sdk.rs),
 * which starts the real stack and runs this test with the stack's URLs in the
 * environment: development tokens, a control channel to stop and start the edge, and
 * bounded waits.
 *
 * Control channel: the test prints `CONTROL <action>` on a line of its own on stdout
 * and waits for `DONE <action>` on stdin.
 */

import { createHmac, randomUUID } from "node:crypto";
import { createInterface } from "node:readline";

import type { ChatClient } from "../src/index.js";

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run this test through \`cargo nextest run -p chat-e2e sdk::\` (or \`npm test\`)`);
  }
  return value;
}

/** The stack the Rust harness started. */
export const env = {
  /** The edge the harness stops and starts again. */
  wsUrl: required("CHAT_SDK_WS_URL"),
  /** A second edge that stays up. */
  wsUrl2: required("CHAT_SDK_WS_URL_2"),
  apiUrl: required("CHAT_SDK_API_URL"),
  secret: required("CHAT_SDK_JWT_SECRET"),
  issuer: required("CHAT_SDK_JWT_ISSUER"),
  audience: required("CHAT_SDK_JWT_AUDIENCE"),
};

/** A prefix that keeps this run's users apart from any other's. */
export const run = randomUUID().slice(0, 8);

const base64url = (value: string | Buffer) => Buffer.from(value).toString("base64url");

/** A development HS256 token, as `chatctl token` mints them. */
export function token(userId: string, ttlS = 3600): string {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const claims = base64url(
    JSON.stringify({
      sub: userId,
      name: `User ${userId}`,
      roles: ["student"],
      iat: now,
      exp: now + ttlS,
      iss: env.issuer,
      aud: env.audience,
    }),
  );
  const signature = createHmac("sha256", env.secret).update(`${header}.${claims}`).digest("base64url");
  return `${header}.${claims}.${signature}`;
}

const replies: string[] = [];
const waiters: Array<() => void> = [];
const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  replies.push(line.trim());
  for (const wake of waiters.splice(0)) wake();
});

/** Stops reading the control channel, so that the process can exit. */
export function releaseControl(): void {
  input.close();
  process.stdin.destroy();
}

/** Asks the harness to do something to the stack; resolves when it is done. */
export async function control(action: "stop-edge" | "start-edge", timeoutMs = 60_000): Promise<void> {
  process.stdout.write(`\nCONTROL ${action}\n`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const index = replies.indexOf(`DONE ${action}`);
    if (index >= 0) {
      replies.splice(index, 1);
      return;
    }
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`the harness did not answer CONTROL ${action} within ${timeoutMs} ms`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** Polls `check` until it returns true; fails with `what` (and the last detail) after the timeout. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(50);
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Everything a client's state shows, in a form two clients can be compared by. */
export function picture(client: ChatClient): unknown {
  return client
    .chats()
    .sort((a, b) => (a.id < b.id ? -1 : 1))
    .map((view) => ({
      id: view.id,
      title: view.title,
      participants: view.participants,
      lastSeq: view.lastSeq,
      lastReadSeq: view.lastReadSeq,
      unreadCount: view.unreadCount,
      messages: client.messages(view.id),
    }));
}
