// One followed change stream: connects, resumes from the last token after any drop (server
// restart, network loss, expired token, overflow), reports a `reset` so the caller reloads, and
// says what state its connection is in.

import type { AuthProvider } from "./auth.js";
import { CapebaseError } from "./errors.js";
import type { QueryPairs, Transport } from "./http.js";
import { openSse } from "./sse.js";
import type { RawChange, StreamConnection, StreamEnd, StreamMessage } from "./stream.js";
import { type Timer, backoff, startTimer } from "./timers.js";
import { type WebSocketConstructor, openWebSocket } from "./websocket.js";

/**
 * `connecting`: before the first connection; `live`: connected, changes arrive; `reconnecting`:
 * the connection dropped and is being resumed; `failed`: the server refused the stream (a bad
 * filter: see `error`), no retry; `closed`: `close()` was called.
 */
export type ConnectionState = "connecting" | "live" | "reconnecting" | "failed" | "closed";

/** A change of a row you may read, relative to your view and the stream's filters. */
export type Change<Row> = {
  /** The change-log id (monotonic). */
  id: number;
  table: string;
  timestamp: string;
  /** The token that resumes the stream right after this change. */
  resume: string;
} & (
  | { event: "INSERT"; payload: Row; old: null } // created, or entered your view
  | { event: "UPDATE"; payload: Row; old: Row | null }
  | { event: "DELETE"; payload: Partial<Row>; old: Row | null } // deleted or left your view: the key only
);

/** Why the stream was reset: the server could not resume from the token (too old, foreign,
 * another user's): reload what you show, then follow the live changes. */
export interface ResetInfo {
  reason: string;
}

export type StreamTransport = "sse" | "websocket";

export interface SubscribeOptions {
  /** Resume from a token saved earlier (`subscription.resumeToken`); the server replays what
   * was missed, or sends a reset when it cannot. */
  resume?: string | null;
  /** "sse" (default; fetch-based, any runtime with fetch) or "websocket". */
  transport?: StreamTransport;
  /** Called when the stream is reset; changes that arrive meanwhile wait until it settles. */
  onReset?: (info: ResetInfo) => void | Promise<void>;
  /** Called with each new connection state. */
  onState?: (state: ConnectionState, error: CapebaseError | null) => void;
  /** Called when a connection opens: `resumed` is false for a stream that starts afresh (no
   * token to resume from), whose caller should (re)load what it shows. */
  onOpen?: (resumed: boolean) => void;
  /** Reconnect when nothing arrived for this long (ms; default 45 s, three heartbeats). */
  idleTimeout?: number;
}

/** What a Subscription needs from its client. */
export interface StreamContext {
  transport: Transport;
  auth: AuthProvider;
  WebSocket: WebSocketConstructor | undefined;
  retry: { initialDelay: number; maxDelay: number };
  defaultTransport: StreamTransport;
  track(subscription: { close(): void }): () => void;
}

/** A followed stream of one table's changes. */
export class Subscription<Row = Record<string, unknown>> {
  /** The connection's state now. */
  state: ConnectionState = "connecting";
  /** The last error (a failed attempt while reconnecting, or why it failed), else null. */
  error: CapebaseError | null = null;
  /** The token to resume after the last change received: save it to resume after a reload. */
  resumeToken: string | null;
  /** Resolves once the server has accepted the stream: changes committed from then on arrive.
   * Rejects if the stream fails first (a refused filter) or is closed. */
  readonly ready: Promise<void>;
  private settle!: { resolve: () => void; reject: (error: unknown) => void };

  private connection: StreamConnection | null = null;
  private generation = 0;
  private attempts = 0;
  private timer: Timer | null = null;
  private hasOpened = false;
  private readonly untrack: () => void;
  private readonly unlisten: () => void;
  private readonly removeOnline: () => void;

  constructor(
    private readonly context: StreamContext,
    private readonly table: string,
    private readonly filters: QueryPairs,
    private readonly handler: (change: Change<Row>) => void,
    private readonly options: SubscribeOptions = {},
  ) {
    this.resumeToken = options.resume ?? null;
    this.ready = new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    this.ready.catch(() => undefined); // unobserved: not an unhandled rejection
    const transport = options.transport ?? context.defaultTransport;
    if (transport === "websocket" && context.WebSocket === undefined) {
      throw new CapebaseError(0, "No WebSocket on this runtime: pass createClient(url, { WebSocket }) or use SSE", {
        kind: "usage",
      });
    }
    this.untrack = context.track(this);
    // A new token (refreshed, or another user): reconnect with it, resuming where we are.
    this.unlisten = context.auth.onTokenChange?.(() => this.handover()) ?? (() => undefined);
    this.removeOnline = onOnline(() => {
      if (this.state === "reconnecting" && this.connection === null) this.connect();
    });
    this.connect();
  }

  /** Stop following the stream. */
  close(): void {
    if (this.state === "closed") return;
    this.stop();
    this.untrack();
    this.unlisten();
    this.removeOnline();
    this.setState("closed", null);
    this.settle.reject(new CapebaseError(0, "The subscription was closed", { kind: "usage" }));
  }

  /** Reconnect now (resuming), e.g. after `failed` once the cause is fixed. */
  reconnect(): void {
    if (this.state === "closed") return;
    this.stop();
    this.connect();
  }

  private stop(): void {
    this.generation += 1;
    this.timer?.cancel();
    this.timer = null;
    this.connection?.close();
    this.connection = null;
  }

  private handover(): void {
    if (this.state === "closed" || this.state === "failed") return;
    this.stop();
    this.connect(true);
  }

  private connect(quiet = false): void {
    const generation = ++this.generation;
    if (!quiet || this.state !== "live") this.setState(this.hasOpened ? "reconnecting" : "connecting", this.error);
    const resume = this.resumeToken;
    const request = {
      path: `/${encodeURIComponent(this.table)}/subscribe`,
      filters: this.filters,
      resume,
      idleTimeout: this.options.idleTimeout ?? 45_000,
    };
    const handlers = {
      open: () => {
        if (generation !== this.generation) return;
        this.attempts = 0;
        this.hasOpened = true;
        this.setState("live", null);
        this.settle.resolve();
        this.options.onOpen?.(resume !== null);
      },
      message: (message: StreamMessage) => {
        if (generation === this.generation) this.receive(message);
      },
      end: (end: StreamEnd) => {
        if (generation !== this.generation) return;
        this.connection = null;
        this.ended(end);
      },
    };
    const WebSocketImpl = this.context.WebSocket;
    if ((this.options.transport ?? this.context.defaultTransport) === "websocket" && WebSocketImpl) {
      void this.streamAuth().then(
        (params) => {
          if (generation !== this.generation) return;
          this.connection = openWebSocket(this.context.transport, WebSocketImpl, request, params, handlers);
        },
        (error: unknown) => {
          if (generation !== this.generation) return;
          const failure = error instanceof CapebaseError ? error : CapebaseError.network(error);
          this.ended({ action: "reconnect", delay: "backoff", error: failure });
        },
      );
    } else {
      this.connection = openSse(this.context.transport, request, handlers);
    }
  }

  private async streamAuth(): Promise<Record<string, string>> {
    const auth = this.context.auth;
    if (auth.streamParams) return auth.streamParams();
    const token = await auth.getToken();
    return token ? { access_token: token } : {};
  }

  private receive(message: StreamMessage): void {
    switch (message.kind) {
      case "heartbeat":
        return;
      case "ready":
        this.resumeToken = message.token;
        return;
      case "reset": {
        this.resumeToken = message.token;
        const onReset = this.options.onReset;
        if (onReset) this.after(() => onReset({ reason: message.reason }));
        return;
      }
      case "change": {
        this.resumeToken = message.token;
        const change = { ...message.change, resume: message.token } as RawChange & { resume: string };
        this.after(() => this.handler(change as unknown as Change<Row>));
        return;
      }
    }
  }

  /** Run `step` after the steps before it: a reset's reload holds the changes behind it. A
   * synchronous step runs at once when nothing is pending. */
  private after(step: () => void | Promise<void>): void {
    this.steps.push(step);
    if (!this.draining) void this.drain();
  }

  private steps: (() => void | Promise<void>)[] = [];
  private draining = false;

  private async drain(): Promise<void> {
    this.draining = true;
    while (this.steps.length > 0 && this.state !== "closed") {
      const step = this.steps.shift() as () => void | Promise<void>;
      try {
        const result = step();
        if (result instanceof Promise) await result;
      } catch (error) {
        reportHandlerError(error);
      }
    }
    this.steps = [];
    this.draining = false;
  }

  private ended(end: StreamEnd): void {
    if (end.action === "fail") {
      this.setState("failed", end.error);
      this.settle.reject(end.error);
      return;
    }
    if (end.action === "reconnect" && end.resume) this.resumeToken = end.resume;
    // Ended on purpose to resume at once (a new token, an overflow): still live, unless it fails.
    const planned = end.action === "reconnect" && end.delay === "now";
    if (!planned) this.setState(this.hasOpened ? "reconnecting" : "connecting", end.error ?? null);
    const retry = this.context.retry;
    if (end.action === "renew-auth") {
      // Renewing may change the token, which reconnects (handover); otherwise retry later.
      const generation = this.generation;
      const auth = this.context.auth;
      void (async () => {
        const token = await auth.getToken().catch(() => null);
        await auth.onUnauthorized?.(token).catch(() => false);
      })().finally(() => {
        if (generation === this.generation) this.schedule(backoff(this.attempts++, retry.initialDelay, retry.maxDelay));
      });
      return;
    }
    const delay = end.delay === "now" ? 0 : end.delay === "backoff" ? backoff(this.attempts++, retry.initialDelay, retry.maxDelay) : end.delay;
    this.schedule(delay);
  }

  private schedule(delay: number): void {
    const generation = this.generation;
    this.timer?.cancel();
    this.timer = startTimer(
      () => {
        if (generation === this.generation && this.state !== "closed") this.connect(delay === 0);
      },
      delay,
      false,
    );
  }

  private setState(state: ConnectionState, error: CapebaseError | null): void {
    const changed = state !== this.state || error !== this.error;
    this.state = state;
    this.error = error;
    if (changed) this.options.onState?.(state, error);
  }
}

function reportHandlerError(error: unknown): void {
  // A handler's bug must not stop the stream (nor kill a Node process): report it and go on.
  console.error("capebase: a subscription handler failed:", error);
}

function onOnline(listener: () => void): () => void {
  const target = globalThis as { addEventListener?: (type: string, fn: () => void) => void; removeEventListener?: (type: string, fn: () => void) => void };
  if (typeof target.addEventListener !== "function" || typeof target.removeEventListener !== "function") {
    return () => undefined;
  }
  target.addEventListener("online", listener);
  return () => target.removeEventListener?.("online", listener);
}
