// The change stream over a WebSocket (`WS /{table}/subscribe`): the same JSON as SSE, with each
// change's resume token in `"resume"`. A WebSocket cannot send headers, so the stream is
// authenticated by query parameters (PasswordAuth: a single-use ticket).
import { CapebaseError, isObject } from "./errors.js";
import { parseJson } from "./json.js";
import { RESUME_NOW } from "./stream.js";
import { startTimer } from "./timers.js";
const POLICY_VIOLATION = 1008;
const TRY_AGAIN_LATER = 1013;
const BAD_TOKEN = "Invalid or expired token";
/** Open `request` as a WebSocket stream; `auth` are the query parameters that authenticate it. */
export function openWebSocket(transport, WebSocketImpl, request, auth, handlers) {
    const query = [...request.filters, ...Object.entries(auth)];
    if (request.resume !== null)
        query.push(["last_event_id", request.resume]);
    const url = transport.websocketUrl(request.path, query);
    let closed = false;
    let opened = false;
    let idle = null;
    let pending = null;
    const socket = new WebSocketImpl(url);
    const finish = (end) => {
        if (closed)
            return;
        closed = true;
        idle?.cancel();
        try {
            socket.close();
        }
        catch {
            // already closing
        }
        handlers.end(end);
    };
    const touch = () => {
        idle?.cancel();
        if (request.idleTimeout > 0 && !closed)
            idle = startTimer(() => finish(RESUME_NOW), request.idleTimeout, false);
    };
    // The server accepts every socket, then closes one whose filters it refuses; a new stream's
    // first message (`ready`) is what says it was accepted. A resumed stream's filters were
    // accepted before, and it may have nothing to say for a while.
    const accepted = () => {
        if (opened)
            return;
        opened = true;
        handlers.open();
    };
    socket.onopen = () => {
        if (closed)
            return;
        touch();
        if (request.resume !== null)
            accepted();
    };
    socket.onmessage = (event) => {
        if (closed)
            return;
        touch();
        accepted();
        let data;
        try {
            data = parseJson(String(event.data));
        }
        catch {
            return;
        }
        if (!isObject(data))
            return;
        switch (data["event"]) {
            case "heartbeat":
                return handlers.message({ kind: "heartbeat" });
            case "ready":
                return handlers.message({ kind: "ready", token: String(data["id"]) });
            case "reset":
                return handlers.message({
                    kind: "reset",
                    token: String(data["resume"]),
                    reason: typeof data["reason"] === "string" ? data["reason"] : "reset",
                });
            case "unavailable":
                // The close (1013) follows; resume from here after the server's advice.
                pending = { action: "reconnect", delay: "backoff", resume: String(data["resume"]) };
                return;
            default: {
                const { resume, ...change } = data;
                if (typeof resume !== "string")
                    return;
                handlers.message({ kind: "change", change: change, token: resume });
            }
        }
    };
    socket.onerror = () => {
        // onclose follows with the code.
    };
    socket.onclose = (event) => {
        if (closed)
            return;
        finish(pending ?? endForClose(event.code, event.reason, opened, url));
    };
    return {
        close() {
            closed = true;
            idle?.cancel();
            try {
                socket.close(1000);
            }
            catch {
                // never opened
            }
        },
    };
}
/** What to do after the server closed the socket with `code`. */
export function endForClose(code, reason, opened, url) {
    if (code === POLICY_VIOLATION) {
        if (reason === "credentials expired")
            return RESUME_NOW;
        if (reason === BAD_TOKEN)
            return { action: "renew-auth" };
        return { action: "fail", error: new CapebaseError(400, reason || "The server refused the stream", { kind: "bad_request", url }) };
    }
    if (code === TRY_AGAIN_LATER && reason.startsWith("too slow"))
        return RESUME_NOW;
    const error = opened ? undefined : CapebaseError.network(new Error(`WebSocket closed with ${code}`), { url });
    return error ? { action: "reconnect", delay: "backoff", error } : { action: "reconnect", delay: "backoff" };
}
