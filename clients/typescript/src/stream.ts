// What both stream transports (SSE over fetch, WebSocket) report to a subscription: the
// server's messages, parsed, and how a connection ended.

import type { CapebaseError } from "./errors.js";
import type { QueryPairs } from "./http.js";

/** A change as the server sends it: `{id, table, event, payload, old, timestamp}`. */
export interface RawChange {
  id: number;
  table: string;
  event: "INSERT" | "UPDATE" | "DELETE";
  payload: Record<string, unknown>;
  old: Record<string, unknown> | null;
  timestamp: string;
}

/** One message of a stream; `token` is the resume token to continue after it. */
export type StreamMessage =
  | { kind: "change"; change: RawChange; token: string }
  | { kind: "ready"; token: string }
  | { kind: "reset"; token: string; reason: string }
  | { kind: "heartbeat" };

/**
 * How a connection ended, and what to do next: reconnect (at once, after a backoff delay, or
 * after `delay` ms), renew the token first, or stop (an error no retry will fix).
 */
export type StreamEnd =
  | { action: "reconnect"; delay: "now" | "backoff" | number; resume?: string; error?: CapebaseError }
  | { action: "renew-auth"; error?: CapebaseError }
  | { action: "fail"; error: CapebaseError };

export interface StreamHandlers {
  /** The server accepted the stream (its subscriber is registered). */
  open(): void;
  message(message: StreamMessage): void;
  /** Called once, last; never after the subscription closed the connection itself. */
  end(end: StreamEnd): void;
}

export interface StreamRequest {
  /** `/{table}/subscribe`. */
  path: string;
  /** The filters, in a stable order. */
  filters: QueryPairs;
  /** The resume token to continue from, or null for a new stream. */
  resume: string | null;
  /** Reconnect when nothing (not even a heartbeat) arrived for this long (ms; 0: never). */
  idleTimeout: number;
}

export interface StreamConnection {
  close(): void;
}

/** The subscriber's queue overflowed, the token expired, the database went away: the reasons
 * the server ends a stream on purpose, and the delay before resuming. */
export const RESUME_NOW = { action: "reconnect", delay: "now" } as const satisfies StreamEnd;
