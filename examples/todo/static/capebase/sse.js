// Server-Sent Events over fetch: works in browsers and in Node 20 (which has no EventSource),
// sends the Authorization header (no token in the URL) and Last-Event-ID, and sees the HTTP
// status, so a 401 renews the token and a 400 stops instead of retrying forever.
import { CapebaseError, isObject } from "./errors.js";
import { readBody } from "./http.js";
import { parseJson } from "./json.js";
import { RESUME_NOW } from "./stream.js";
import { startTimer } from "./timers.js";
/** The event stream format (WHATWG HTML, "Server-sent events"), fed text as it arrives. */
export class SseParser {
    buffer = "";
    data = [];
    event = "";
    id = null;
    retry = null;
    pendingCarriageReturn = false;
    /** The events completed by `chunk`. Comment lines (heartbeats) count as activity only. */
    feed(chunk) {
        let text = chunk;
        if (this.pendingCarriageReturn && text.startsWith("\n"))
            text = text.slice(1);
        this.pendingCarriageReturn = false;
        this.buffer += text;
        const events = [];
        const lines = this.buffer.split(/\r\n|\r|\n/);
        this.buffer = lines.pop() ?? "";
        // A chunk ending in "\r" may be half of a "\r\n": the "\n" must not end another line.
        if (text.endsWith("\r"))
            this.pendingCarriageReturn = true;
        for (const line of lines) {
            const event = this.line(line);
            if (event !== null)
                events.push(event);
        }
        return events;
    }
    line(line) {
        if (line === "")
            return this.dispatch();
        if (line.startsWith(":"))
            return null;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" "))
            value = value.slice(1);
        if (field === "data")
            this.data.push(value);
        else if (field === "event")
            this.event = value;
        else if (field === "id" && !value.includes("\0"))
            this.id = value;
        else if (field === "retry" && /^\d+$/.test(value))
            this.retry = Number(value);
        return null;
    }
    dispatch() {
        const event = { event: this.event || "message", data: this.data.join("\n"), id: this.id, retry: this.retry };
        this.data = [];
        this.event = "";
        this.id = null;
        this.retry = null;
        return event.data === "" && event.event === "message" ? null : event;
    }
}
/** Open `request` as an SSE stream through `transport`. */
export function openSse(transport, request, handlers) {
    const controller = new AbortController();
    let closed = false;
    let idle = null;
    const finish = (end) => {
        if (closed)
            return;
        closed = true;
        idle?.cancel();
        controller.abort();
        handlers.end(end);
    };
    const touch = () => {
        idle?.cancel();
        if (request.idleTimeout > 0 && !closed) {
            idle = startTimer(() => finish(RESUME_NOW), request.idleTimeout, false);
        }
    };
    void (async () => {
        // Only Authorization and Last-Event-ID beyond what CORS allows without asking.
        const headers = { Accept: "text/event-stream" };
        if (request.resume !== null)
            headers["Last-Event-ID"] = request.resume;
        let response;
        try {
            response = await transport.send("GET", request.path, { query: request.filters, headers, signal: controller.signal });
        }
        catch (error) {
            finish({ action: "reconnect", delay: "backoff", error: asError(error) });
            return;
        }
        if (closed)
            return;
        if (response.status !== 200 || response.body === null) {
            finish(endForStatus(response, await readBody(response), transport.url(request.path)));
            return;
        }
        handlers.open();
        touch();
        const parser = new SseParser();
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        try {
            for (;;) {
                const { done, value } = await reader.read();
                if (closed)
                    return;
                if (done)
                    break;
                touch();
                for (const event of parser.feed(value)) {
                    const outcome = interpret(event);
                    if (outcome === null)
                        continue;
                    if ("kind" in outcome)
                        handlers.message(outcome);
                    else
                        return finish(outcome);
                    if (closed)
                        return;
                }
            }
        }
        catch (error) {
            if (closed)
                return;
            finish({ action: "reconnect", delay: "backoff", error: asError(error) });
            return;
        }
        finally {
            reader.releaseLock();
        }
        // The server ended the stream without saying why: it is shutting down or restarting.
        finish({ action: "reconnect", delay: "backoff" });
    })();
    return {
        close() {
            closed = true;
            idle?.cancel();
            controller.abort();
        },
    };
}
/** What to do after an answer other than 200. */
export function endForStatus(response, body, url) {
    const error = CapebaseError.fromResponse(response.status, body, response.headers, { method: "GET", url });
    if (response.status === 401)
        return { action: "renew-auth", error };
    if (response.status === 429 || response.status === 408 || response.status >= 500) {
        return { action: "reconnect", delay: error.retryAfter !== null ? error.retryAfter * 1000 : "backoff", error };
    }
    return { action: "fail", error };
}
/** What one SSE event means: a message for the subscription, or how the stream ends. */
export function interpret(event) {
    const data = parse(event.data);
    switch (event.event) {
        case "message":
            if (!isObject(data) || event.id === null)
                return null;
            return { kind: "change", change: data, token: event.id };
        case "ready":
            return event.id === null ? null : { kind: "ready", token: event.id };
        case "reset":
            return { kind: "reset", token: event.id ?? String(isObject(data) ? data["resume"] : ""), reason: reasonOf(data) };
        case "expired": // the access token expired or the sign-in changed: resume with a new one
        case "overflow": // we fell behind: resume from the last change we got (its token is ours)
            return RESUME_NOW;
        case "unavailable": {
            const resume = event.id ?? (isObject(data) ? String(data["resume"]) : undefined);
            const end = { action: "reconnect", delay: event.retry ?? "backoff" };
            if (resume)
                end.resume = resume;
            return end;
        }
        default:
            return null;
    }
}
function parse(data) {
    try {
        return parseJson(data);
    }
    catch {
        return null;
    }
}
function reasonOf(data) {
    return isObject(data) && typeof data["reason"] === "string" ? data["reason"] : "reset";
}
function asError(error) {
    return error instanceof CapebaseError ? error : CapebaseError.network(error);
}
