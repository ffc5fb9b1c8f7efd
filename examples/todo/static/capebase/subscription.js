// One followed change stream: connects, resumes from the last token after any drop (server
// restart, network loss, expired token, overflow), reports a `reset` so the caller reloads, and
// says what state its connection is in.
import { CapebaseError } from "./errors.js";
import { openSse } from "./sse.js";
import { backoff, startTimer } from "./timers.js";
import { openWebSocket } from "./websocket.js";
/** A followed stream of one table's changes. */
export class Subscription {
    context;
    table;
    filters;
    handler;
    options;
    /** The connection's state now. */
    state = "connecting";
    /** The last error (a failed attempt while reconnecting, or why it failed), else null. */
    error = null;
    /** The token to resume after the last change received: save it to resume after a reload. */
    resumeToken;
    /** Resolves once the server has accepted the stream: changes committed from then on arrive.
     * Rejects if the stream fails first (a refused filter) or is closed. */
    ready;
    settle;
    connection = null;
    generation = 0;
    attempts = 0;
    timer = null;
    hasOpened = false;
    untrack;
    unlisten;
    removeOnline;
    constructor(context, table, filters, handler, options = {}) {
        this.context = context;
        this.table = table;
        this.filters = filters;
        this.handler = handler;
        this.options = options;
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
            if (this.state === "reconnecting" && this.connection === null)
                this.connect();
        });
        this.connect();
    }
    /** Stop following the stream. */
    close() {
        if (this.state === "closed")
            return;
        this.stop();
        this.untrack();
        this.unlisten();
        this.removeOnline();
        this.setState("closed", null);
        this.settle.reject(new CapebaseError(0, "The subscription was closed", { kind: "usage" }));
    }
    /** Reconnect now (resuming), e.g. after `failed` once the cause is fixed. */
    reconnect() {
        if (this.state === "closed")
            return;
        this.stop();
        this.connect();
    }
    stop() {
        this.generation += 1;
        this.timer?.cancel();
        this.timer = null;
        this.connection?.close();
        this.connection = null;
    }
    handover() {
        if (this.state === "closed" || this.state === "failed")
            return;
        this.stop();
        this.connect(true);
    }
    connect(quiet = false) {
        const generation = ++this.generation;
        if (!quiet || this.state !== "live")
            this.setState(this.hasOpened ? "reconnecting" : "connecting", this.error);
        const resume = this.resumeToken;
        const request = {
            path: `/${encodeURIComponent(this.table)}/subscribe`,
            filters: this.filters,
            resume,
            idleTimeout: this.options.idleTimeout ?? 45_000,
        };
        const handlers = {
            open: () => {
                if (generation !== this.generation)
                    return;
                this.attempts = 0;
                this.hasOpened = true;
                this.setState("live", null);
                this.settle.resolve();
                this.options.onOpen?.(resume !== null);
            },
            message: (message) => {
                if (generation === this.generation)
                    this.receive(message);
            },
            end: (end) => {
                if (generation !== this.generation)
                    return;
                this.connection = null;
                this.ended(end);
            },
        };
        const WebSocketImpl = this.context.WebSocket;
        if ((this.options.transport ?? this.context.defaultTransport) === "websocket" && WebSocketImpl) {
            void this.streamAuth().then((params) => {
                if (generation !== this.generation)
                    return;
                this.connection = openWebSocket(this.context.transport, WebSocketImpl, request, params, handlers);
            }, (error) => {
                if (generation !== this.generation)
                    return;
                const failure = error instanceof CapebaseError ? error : CapebaseError.network(error);
                this.ended({ action: "reconnect", delay: "backoff", error: failure });
            });
        }
        else {
            this.connection = openSse(this.context.transport, request, handlers);
        }
    }
    async streamAuth() {
        const auth = this.context.auth;
        if (auth.streamParams)
            return auth.streamParams();
        const token = await auth.getToken();
        return token ? { access_token: token } : {};
    }
    receive(message) {
        switch (message.kind) {
            case "heartbeat":
                return;
            case "ready":
                this.resumeToken = message.token;
                return;
            case "reset": {
                this.resumeToken = message.token;
                const onReset = this.options.onReset;
                if (onReset)
                    this.after(() => onReset({ reason: message.reason }));
                return;
            }
            case "change": {
                this.resumeToken = message.token;
                const change = { ...message.change, resume: message.token };
                this.after(() => this.handler(change));
                return;
            }
        }
    }
    /** Run `step` after the steps before it: a reset's reload holds the changes behind it. A
     * synchronous step runs at once when nothing is pending. */
    after(step) {
        this.steps.push(step);
        if (!this.draining)
            void this.drain();
    }
    steps = [];
    draining = false;
    async drain() {
        this.draining = true;
        while (this.steps.length > 0 && this.state !== "closed") {
            const step = this.steps.shift();
            try {
                const result = step();
                if (result instanceof Promise)
                    await result;
            }
            catch (error) {
                reportHandlerError(error);
            }
        }
        this.steps = [];
        this.draining = false;
    }
    ended(end) {
        if (end.action === "fail") {
            this.setState("failed", end.error);
            this.settle.reject(end.error);
            return;
        }
        if (end.action === "reconnect" && end.resume)
            this.resumeToken = end.resume;
        // Ended on purpose to resume at once (a new token, an overflow): still live, unless it fails.
        const planned = end.action === "reconnect" && end.delay === "now";
        if (!planned)
            this.setState(this.hasOpened ? "reconnecting" : "connecting", end.error ?? null);
        const retry = this.context.retry;
        if (end.action === "renew-auth") {
            // Renewing may change the token, which reconnects (handover); otherwise retry later.
            const generation = this.generation;
            const auth = this.context.auth;
            void (async () => {
                const token = await auth.getToken().catch(() => null);
                await auth.onUnauthorized?.(token).catch(() => false);
            })().finally(() => {
                if (generation === this.generation)
                    this.schedule(backoff(this.attempts++, retry.initialDelay, retry.maxDelay));
            });
            return;
        }
        const delay = end.delay === "now" ? 0 : end.delay === "backoff" ? backoff(this.attempts++, retry.initialDelay, retry.maxDelay) : end.delay;
        this.schedule(delay);
    }
    schedule(delay) {
        const generation = this.generation;
        this.timer?.cancel();
        this.timer = startTimer(() => {
            if (generation === this.generation && this.state !== "closed")
                this.connect(delay === 0);
        }, delay, false);
    }
    setState(state, error) {
        const changed = state !== this.state || error !== this.error;
        this.state = state;
        this.error = error;
        if (changed)
            this.options.onState?.(state, error);
    }
}
function reportHandlerError(error) {
    // A handler's bug must not stop the stream (nor kill a Node process): report it and go on.
    console.error("capebase: a subscription handler failed:", error);
}
function onOnline(listener) {
    const target = globalThis;
    if (typeof target.addEventListener !== "function" || typeof target.removeEventListener !== "function") {
        return () => undefined;
    }
    target.addEventListener("online", listener);
    return () => target.removeEventListener?.("online", listener);
}
