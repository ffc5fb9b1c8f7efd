// Errors as values: every failure the client reports is a CapebaseError with the server's status
// and message, so callers branch on `error.status` or `error.kind` instead of parsing text.
const KINDS = {
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
/**
 * A failed call: the server's status (0 when there was no answer) and message.
 *
 * `detail` is the server's `{"detail": ...}` as sent; `message` is it as one sentence (a 422's
 * field errors joined). Error bodies are documented in the capebase README, "Status codes".
 */
export class CapebaseError extends Error {
    name = "CapebaseError";
    /** The HTTP status, or 0 when the server could not be reached or the call was refused. */
    status;
    kind;
    /** The server's `detail`: a string, or a 422's list of field errors. */
    detail;
    /** A 422's field errors (empty otherwise). */
    fieldErrors;
    /** Seconds to wait before trying again (a 429's or 503's `Retry-After`), else null. */
    retryAfter;
    method;
    /** The request's URL, credentials (`access_token`, `ticket`...) replaced by "REDACTED":
     * errors get logged and reported, tokens must not be. */
    url;
    constructor(status, message, init = {}) {
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
    static fromResponse(status, body, headers, request = {}) {
        const detail = isObject(body) && "detail" in body ? body["detail"] : body;
        return new CapebaseError(status, describe(status, detail), {
            detail,
            retryAfter: retryAfterSeconds(headers.get("retry-after")),
            ...request,
        });
    }
    /** The error for a request that got no answer (the server is down, the network is off). */
    static network(cause, request = {}) {
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
export function redactUrl(url) {
    return url
        .replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#@]*@/i, "$1REDACTED@")
        .replace(/([?&])([^=&#]*)=([^&#]*)/g, (whole, separator, name) => {
        let decoded = name;
        try {
            decoded = decodeURIComponent(name.replace(/\+/g, " "));
        }
        catch {
            // a malformed name: compare it as written
        }
        return CREDENTIALS.test(decoded) ? `${separator}${name}=REDACTED` : whole;
    });
}
/** Whether `error` is a CapebaseError, optionally of the given status. */
export function isCapebaseError(error, status) {
    return error instanceof CapebaseError && (status === undefined || error.status === status);
}
function kindOf(status) {
    if (status === 0)
        return "network";
    return KINDS[status] ?? (status >= 500 ? "server" : "http");
}
function describe(status, detail) {
    if (typeof detail === "string" && detail)
        return detail;
    const problems = fieldErrors(detail);
    if (problems.length > 0) {
        return problems.map((p) => (p.field ? `${p.field}: ${p.message}` : p.message)).join("; ");
    }
    return `The server answered ${status}`;
}
function fieldErrors(detail) {
    if (!Array.isArray(detail))
        return [];
    return detail.filter(isObject).map((problem) => {
        const loc = Array.isArray(problem["loc"]) ? problem["loc"] : [];
        const last = loc.length > 0 ? loc[loc.length - 1] : "";
        const error = {
            field: loc.length > 1 || typeof last === "string" ? String(last) : "",
            loc,
            message: String(problem["msg"] ?? "is not valid"),
            type: String(problem["type"] ?? ""),
        };
        if (isObject(problem["ctx"]))
            error.ctx = problem["ctx"];
        return error;
    });
}
function retryAfterSeconds(value) {
    if (value === null || value.trim() === "")
        return null;
    const seconds = Number(value);
    if (Number.isFinite(seconds))
        return Math.max(0, seconds);
    const date = Date.parse(value);
    return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}
export function isObject(value) {
    return typeof value === "object" && value !== null && !Array.isArray(value);
}
