/**
 * The WebSocket the SDK talks through: the platform's global `WebSocket` (browsers,
 * Deno, Node 22+), else the `ws` package (Node 20), loaded only when needed so that
 * browser bundles never include it.
 * @module
 */

/** The part of the WHATWG WebSocket the SDK uses (`ws` implements it too). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** Builds a socket for a URL. */
export type SocketFactory = (url: string) => SocketLike;

/** `readyState` of an open socket. */
export const OPEN = 1;

type SocketConstructor = new (url: string) => SocketLike;

let cached: Promise<SocketConstructor> | undefined;

/** The platform's WebSocket, or `ws` where there is none. */
export function defaultSocketFactory(): Promise<SocketFactory> {
  cached ??= resolveConstructor();
  return cached.then((Socket) => (url: string) => new Socket(url));
}

async function resolveConstructor(): Promise<SocketConstructor> {
  const global = (globalThis as { WebSocket?: SocketConstructor }).WebSocket;
  if (global) return global;
  try {
    const module = (await import("ws")) as unknown as { WebSocket: SocketConstructor };
    return module.WebSocket;
  } catch (error) {
    throw new Error(`no global WebSocket and the "ws" package cannot be loaded: ${String(error)}`);
  }
}
