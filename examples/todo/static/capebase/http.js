// HTTP to a capebase app: one request function that adds the caller's token, retries once
// after a 401 when the auth provider could renew the token, and turns every failure into a
// CapebaseError.
import { CapebaseError } from "./errors.js";
import { parseJson, stringifyJson } from "./json.js";
/** Where the app lives and how to reach it: shared by tables, streams and auth helpers. */
export class Transport {
    /** The app's URL without a trailing slash ("" in a browser means this page's origin). */
    baseUrl;
    fetch;
    headers;
    auth = null;
    constructor(baseUrl, fetchImpl, headers = {}) {
        this.baseUrl = baseUrl.replace(/\/+$/, "");
        const found = fetchImpl ?? globalThis.fetch;
        if (found === undefined) {
            throw new CapebaseError(0, "No fetch: pass createClient(url, { fetch }) on this runtime", {
                kind: "usage",
            });
        }
        // A bare global fetch must be called with globalThis as `this` in browsers.
        this.fetch = fetchImpl ?? ((input, init) => globalThis.fetch(input, init));
        this.headers = headers;
    }
    /** The absolute (or, with an empty base, page-relative) URL of `path` with `query`. */
    url(path, query) {
        const search = new URLSearchParams(query === undefined ? [] : Array.isArray(query) ? query : Object.entries(query)).toString();
        return `${this.baseUrl}${path}${search ? `?${search}` : ""}`;
    }
    /** `ws://` / `wss://` form of `url(path, query)`, resolved against the page in a browser. */
    websocketUrl(path, query) {
        const location = globalThis.location;
        const absolute = new URL(this.url(path, query), location?.href);
        absolute.protocol = absolute.protocol === "https:" ? "wss:" : "ws:";
        return absolute.toString();
    }
    /**
     * Send one request and return the raw Response (any status). Adds the auth token; after a
     * 401 it asks the auth provider to renew the token and, if it did, sends the request again.
     *
     * Throws CapebaseError (status 0) when the server cannot be reached.
     */
    async send(method, path, options = {}) {
        const authenticate = options.authenticate ?? true;
        const auth = authenticate ? this.auth : null;
        let token = auth ? await auth.getToken() : null;
        let response = await this.sendOnce(method, path, options, token);
        if (response.status === 401 && auth?.onUnauthorized && (await auth.onUnauthorized(token))) {
            token = await auth.getToken();
            await response.body?.cancel().catch(() => undefined);
            response = await this.sendOnce(method, path, options, token);
        }
        return response;
    }
    /**
     * Send one request and parse its JSON answer.
     *
     * Throws CapebaseError with the server's status and message for any non-2xx answer.
     */
    async request(method, path, options = {}) {
        const response = await this.send(method, path, options);
        const body = await readBody(response);
        if (!response.ok) {
            throw CapebaseError.fromResponse(response.status, body, response.headers, {
                method,
                url: this.url(path),
            });
        }
        return { status: response.status, headers: response.headers, body: body };
    }
    async sendOnce(method, path, options, token) {
        const headers = { Accept: "application/json", ...this.headers, ...options.headers };
        let body;
        if (options.json !== undefined) {
            headers["Content-Type"] = "application/json";
            try {
                body = stringifyJson(options.json);
            }
            catch (error) {
                if (error instanceof CapebaseError)
                    throw error;
                throw new CapebaseError(0, `Cannot send this body as JSON (${error instanceof Error ? error.message : String(error)})`, {
                    kind: "usage",
                    cause: error,
                });
            }
        }
        else if (options.form !== undefined) {
            body = new URLSearchParams(options.form);
        }
        if (token)
            headers["Authorization"] = `Bearer ${token}`;
        const url = this.url(path, options.query);
        const init = { method, headers };
        if (body !== undefined)
            init.body = body;
        if (options.signal !== undefined)
            init.signal = options.signal;
        try {
            return await this.fetch(url, init);
        }
        catch (error) {
            if (options.signal?.aborted)
                throw error;
            throw CapebaseError.network(error, { method, url });
        }
    }
}
/** The JSON body of `response` (integers past 2^53 as BigInt), or null when it has none or is
 * not JSON. */
export async function readBody(response) {
    const text = await response.text().catch(() => "");
    if (!text)
        return null;
    const type = response.headers.get("content-type") ?? "";
    if (!type.includes("json"))
        return text;
    try {
        return parseJson(text);
    }
    catch {
        return text;
    }
}
