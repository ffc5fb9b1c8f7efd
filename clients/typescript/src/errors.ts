// Errors as values: every failure the client reports is a CapebaseError with the server's status
// and message, so callers branch on `error.status` or `error.kind` instead of parsing text.

/** What went wrong, by the status the server answered (or `network` when it did not). */
export type ErrorKind =
  | "network" // no answer: the server is down or unreachable (status 0)
  | "bad_request" // 400: unknown filter field or operator, bad order_by
  | "unauthorized" // 401: sign in (again)
  | "forbidden" // 403: readable, but not yours to change
  | "not_found" // 404: no such row, or not readable by you (same answer)
  | "conflict" // 409: a unique or foreign key constraint
  | "too_large" // 413: the body is over LimitsConfig.max_body_size
  | "invalid" // 422: a body or filter value the server refused; see `fieldErrors`
  | "rate_limited" // 429: too many attempts or streams; see `retryAfter`
  | "unavailable" // 503: the database is unavailable; see `retryAfter`
  | "timeout" // 504: a statement ran too long
  | "server" // any other 5xx
  | "http" // any other status
  | "usage"; // a call the client refuses before sending it (status 0)

/** One entry of a 422's `detail` list (FastAPI's validation errors). */
export interface FieldError {
  /** The field's name: the last part of `loc` ("task"), or "" when it names none. */
  field: string;
  /** Where the problem is: `["body", "task"]`, `["query", "limit"]`. */
  loc: (string | number)[];
  /** The server's sentence: "String should have at least 1 character". */
  message: string;
  /** The validation error type: "string_too_short", "missing", "extra_forbidden", ... */
  type: string;
  /** The limits the value broke, when the server says them: `{min_length: 1}`. */
  ctx?: Record<string, unknown>;
}

const KINDS: Record<number, ErrorKind> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  413: "too_large",
  422: "invalid",
  429: "rate_limited",
  503: "unavailable",
  504: "timeout",
};

/** Options of a CapebaseError besides its status and message. */
export interface CapebaseErrorInit {
  kind?: ErrorKind;
  detail?: unknown;
  retryAfter?: number | null;
  method?: string;
  url?: string;
  cause?: unknown;
}

/**
 * A failed call: the server's status (0 when there was no answer) and message.
 *
 * `detail` is the server's `{"detail": ...}` as sent; `message` is it as one sentence (a 422's
 * field errors joined). Error bodies are documented in the capebase README, "Status codes".
 */
export class CapebaseError extends Error {
  override readonly name = "CapebaseError";
  /** The HTTP status, or 0 when the server could not be reached or the call was refused. */
  readonly status: number;
  readonly kind: ErrorKind;
  /** The server's `detail`: a string, or a 422's list of field errors. */
  readonly detail: unknown;
  /** A 422's field errors (empty otherwise). */
  readonly fieldErrors: FieldError[];
  /** Seconds to wait before trying again (a 429's or 503's `Retry-After`), else null. */
  readonly retryAfter: number | null;
  readonly method: string | undefined;
  /** The request's URL, credentials (`access_token`, `ticket`...) replaced by "REDACTED":
   * errors get logged and reported, tokens must not be. */
  readonly url: string | undefined;

  constructor(status: number, message: string, init: CapebaseErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = status;
    this.kind = init.kind ?? kindOf(status);
    this.detail = init.detail ?? null;
    this.fieldErrors = fieldErrors(this.detail);
    this.retryAfter = init.retryAfter ?? null;
    this.method = init.method;
    this.url = init.url === undefined ? undefined : redactUrl(init.url);
  }

  /** The error for a server's answer: `body` is the parsed JSON body, if any. */
  static fromResponse(
    status: number,
    body: unknown,
    headers: Headers,
    request: { method?: string; url?: string } = {},
  ): CapebaseError {
    const detail = isObject(body) && "detail" in body ? body["detail"] : body;
    return new CapebaseError(status, describe(status, detail), {
      detail,
      retryAfter: retryAfterSeconds(headers.get("retry-after")),
      ...request,
    });
  }

  /** The error for a request that got no answer (the server is down, the network is off). */
  static network(cause: unknown, request: { method?: string; url?: string } = {}): CapebaseError {
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new CapebaseError(0, `Cannot reach the server (${reason})`, {
      kind: "network",
      cause,
      ...request,
    });
  }
}

const CREDENTIALS = /^(access_token|refresh_token|id_token|token|ticket|password|api_key|apikey|secret)$/i;

/** `url` with the values of credential query parameters, and any user:password, redacted. */
export function redactUrl(url: string): string {
  return url
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#@]*@/i, "$1REDACTED@")
    .replace(/([?&])([^=&#]*)=([^&#]*)/g, (whole, separator: string, name: string) => {
      let decoded = name;
      try {
        decoded = decodeURIComponent(name.replace(/\+/g, " "));
      } catch {
        // a malformed name: compare it as written
      }
      return CREDENTIALS.test(decoded) ? `${separator}${name}=REDACTED` : whole;
    });
}

/** Whether `error` is a CapebaseError, optionally of the given status. */
export function isCapebaseError(error: unknown, status?: number): error is CapebaseError {
  return error instanceof CapebaseError && (status === undefined || error.status === status);
}

function kindOf(status: number): ErrorKind {
  if (status === 0) return "network";
  return KINDS[status] ?? (status >= 500 ? "server" : "http");
}

function describe(status: number, detail: unknown): string {
  if (typeof detail === "string" && detail) return detail;
  const problems = fieldErrors(detail);
  if (problems.length > 0) {
    return problems.map((p) => (p.field ? `${p.field}: ${p.message}` : p.message)).join("; ");
  }
  return `The server answered ${status}`;
}

function fieldErrors(detail: unknown): FieldError[] {
  if (!Array.isArray(detail)) return [];
  return detail.filter(isObject).map((problem) => {
    const loc = Array.isArray(problem["loc"]) ? (problem["loc"] as (string | number)[]) : [];
    const last = loc.length > 0 ? loc[loc.length - 1] : "";
    const error: FieldError = {
      field: loc.length > 1 || typeof last === "string" ? String(last) : "",
      loc,
      message: String(problem["msg"] ?? "is not valid"),
      type: String(problem["type"] ?? ""),
    };
    if (isObject(problem["ctx"])) error.ctx = problem["ctx"];
    return error;
  });
}

function retryAfterSeconds(value: string | null): number | null {
  if (value === null || value.trim() === "") return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
