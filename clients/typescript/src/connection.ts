/**
 * One logical connection to the edges that survives any number of sockets: it dials
 * with a fresh token, pings at the `hello`'s heartbeat, answers `token.expiring` with
 * `auth.refresh`, and after a close dials again: after the `reconnect` frame's
 * `after_ms` on a shutdown (1001, then to the next edge URL), at once with a new
 * token after 4001, and with a longer jittered exponential backoff after 4008 and 4010.
 * @module
 */

import { Backoff, type BackoffOptions } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { CloseCode, type Command, type HelloFrame, type ServerFrame } from "./protocol.js";
import { OPEN, type SocketFactory, type SocketLike } from "./socket.js";

/** What the connection reports. */
export interface ConnectionEvents {
  /** A socket reached `hello`. */
  open: HelloFrame;
  /** Any frame after `hello` (and `hello` itself). */
  frame: ServerFrame;
  /** A socket closed; `retryInMs` is when the next one is dialled (absent when not). */
  close: { code: number; reason: string; retryInMs?: number };
  /** The token provider or `auth.refresh` failed. */
  authError: Error;
}

/** How the connection behaves. */
export interface ConnectionOptions {
  /** Edge URLs (`ws://host:8082/ws`); after a 1001 the next one is tried. */
  urls: string[];
  /** Called for every dial and for every `token.expiring`. */
  token: () => Promise<string>;
  sockets: () => Promise<SocketFactory>;
  backoff?: BackoffOptions;
  /** No `hello` within this long after dialling: drop the socket and dial again (10 s). */
  helloTimeoutMs?: number;
}

/** Steps of backoff added after 4008 (policy) and 4010 (too many connections). */
const PENALTY_STEPS = 4;

/** Keeps one socket open while started. */
export class Connection extends Emitter<ConnectionEvents> {
  private socket: SocketLike | undefined;
  private urlIndex = 0;
  private readonly backoff: Backoff;
  private stopped = true;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private helloTimer: ReturnType<typeof setTimeout> | undefined;
  private lastFrameAt = 0;
  private reconnectAfterMs: number | undefined;
  private ready = false;
  private refreshCount = 0;

  constructor(private readonly options: ConnectionOptions) {
    super();
    this.backoff = new Backoff(options.backoff);
  }

  /** True between `hello` and the socket's close. */
  get isReady(): boolean {
    return this.ready;
  }

  /** Starts dialling. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.dial();
  }

  /** Closes the socket and dials no more. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.socket?.close(CloseCode.normal, "client closed");
    this.teardown();
  }

  /** Sends a command; false when no socket is ready. */
  send(command: Command): boolean {
    if (!this.ready || !this.socket || this.socket.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify(command));
    return true;
  }

  /** Drops the current socket (as a network failure would) and dials again. */
  drop(): void {
    this.socket?.close(CloseCode.normal, "client reconnects");
  }

  private async dial(): Promise<void> {
    if (this.stopped) return;
    let token: string;
    let factory: SocketFactory;
    try {
      [token, factory] = await Promise.all([this.options.token(), this.options.sockets()]);
    } catch (error) {
      this.emit("authError", asError(error));
      this.schedule(this.backoff.next());
      return;
    }
    if (this.stopped) return;
    const url = this.options.urls[this.urlIndex % this.options.urls.length] ?? "";
    const separator = url.includes("?") ? "&" : "?";
    let socket: SocketLike;
    try {
      socket = factory(`${url}${separator}access_token=${encodeURIComponent(token)}`);
    } catch {
      this.schedule(this.backoff.next());
      return;
    }
    this.socket = socket;
    this.helloTimer = setTimeout(() => socket.close(CloseCode.normal, "no hello"), this.options.helloTimeoutMs ?? 10_000);
    socket.onmessage = (event) => {
      if (this.socket === socket) this.receive(String(event.data));
    };
    socket.onerror = () => {
      // Every error is followed by a close, which decides what happens next.
    };
    socket.onclose = (event) => {
      if (this.socket === socket) this.closed(event.code, event.reason);
    };
  }

  private receive(text: string): void {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      return;
    }
    this.lastFrameAt = Date.now();
    switch (frame.type) {
      case "hello":
        clearTimeout(this.helloTimer);
        this.ready = true;
        this.backoff.reset();
        this.reconnectAfterMs = undefined;
        this.startHeartbeat(frame.heartbeat_ms);
        this.emit("open", frame);
        break;
      case "token.expiring":
        void this.refresh();
        break;
      case "reconnect":
        this.reconnectAfterMs = frame.after_ms;
        break;
      default:
        break;
    }
    this.emit("frame", frame);
  }

  private async refresh(): Promise<void> {
    try {
      const token = await this.options.token();
      this.refreshCount += 1;
      this.send({ type: "auth.refresh", ref: `auth:${this.refreshCount}`, token });
    } catch (error) {
      // The socket closes with 4001 at expiry and the next dial asks for a token again.
      this.emit("authError", asError(error));
    }
  }

  private startHeartbeat(heartbeatMs: number): void {
    clearInterval(this.heartbeat);
    const every = Math.max(1000, heartbeatMs);
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastFrameAt > 2.5 * every) {
        // The edge answers every ping: a socket this quiet is dead without knowing it.
        this.drop();
        return;
      }
      this.send({ type: "ping" });
    }, every);
  }

  private closed(code: number, reason: string): void {
    this.teardown();
    if (this.stopped) {
      this.emit("close", { code, reason });
      return;
    }
    let delay: number;
    if (code === CloseCode.goingAway) {
      this.urlIndex += 1;
      delay = this.reconnectAfterMs ?? this.backoff.next();
    } else if (code === CloseCode.tokenExpired) {
      // Every dial asks the provider for a token, so the next one is fresh; the cap
      // keeps a provider that keeps handing out expired tokens from spinning.
      delay = Math.min(this.backoff.next(), 1000);
    } else if (code === CloseCode.policy || code === CloseCode.tooManyConnections) {
      this.backoff.penalise(PENALTY_STEPS);
      delay = this.backoff.next();
    } else {
      delay = this.backoff.next();
    }
    this.reconnectAfterMs = undefined;
    this.emit("close", { code, reason, retryInMs: delay });
    this.schedule(delay);
  }

  private schedule(delay: number): void {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    this.retryTimer = setTimeout(() => void this.dial(), delay);
  }

  private teardown(): void {
    this.ready = false;
    clearInterval(this.heartbeat);
    clearTimeout(this.helloTimer);
    if (this.socket) {
      this.socket.onmessage = null;
      this.socket.onclose = null;
    }
    this.socket = undefined;
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
