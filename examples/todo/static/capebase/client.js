// The client: typed CRUD for each published table, change streams, live queries, and the auth
// that every request and stream carries.
import { PasswordAuth } from "./auth.js";
import { CapebaseError } from "./errors.js";
import { Transport } from "./http.js";
import { LiveQuery } from "./live.js";
import { encodeQuery, encodeWhere, splitForStream } from "./query.js";
import { Subscription } from "./subscription.js";
export function createClient(url, options = {}) {
    return new CapebaseClient(url, options);
}
export class CapebaseClient {
    /** The auth: with the default PasswordAuth, `signIn`, `signUp`, `signOut`, `user`... */
    auth;
    transport;
    schema;
    streams;
    open = new Set();
    constructor(url, options = {}) {
        this.transport = new Transport(url, options.fetch, options.headers);
        this.auth = options.auth ?? new PasswordAuth();
        this.transport.auth = this.auth;
        this.auth.attach?.(this.transport);
        this.schema = options.schema ?? {};
        const WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
        this.streams = {
            transport: this.transport,
            auth: this.auth,
            WebSocket: WebSocketImpl,
            retry: { initialDelay: options.retry?.initialDelay ?? 250, maxDelay: options.retry?.maxDelay ?? 5000 },
            defaultTransport: options.transport ?? "sse",
            track: (stream) => {
                this.open.add(stream);
                return () => this.open.delete(stream);
            },
        };
    }
    /** The table `name`: list, get, create, update, delete, subscribe, live. */
    from(name) {
        const untyped = this;
        return new Table(untyped, name, this.streams, this.tableSchema(name));
    }
    /** Follow `table`'s changes: `handler` gets each one you may see, in commit order. */
    subscribe(table, options, handler) {
        return this.from(table).subscribe(options, handler);
    }
    /** A live query of `table`: its `rows` follow every change. */
    live(table, query = {}) {
        return this.from(table).live(query);
    }
    /**
     * Call one of your own routes, with the client's auth and errors: resolves to the JSON body,
     * throws CapebaseError for any non-2xx answer.
     */
    async request(method, path, options = {}) {
        return (await this.transport.request(method, path, options)).body;
    }
    /** Close every stream and live query and stop the auth's timers. */
    close() {
        for (const stream of [...this.open])
            stream.close();
        this.auth.close?.();
    }
    tableSchema(name) {
        return this.schema[name] ?? { primaryKey: "id", fields: {} };
    }
}
function isDotSegment(key) {
    return key === "." || key === "..";
}
/** One published table's routes. */
export class Table {
    client;
    name;
    streams;
    schema;
    constructor(client, 
    /** The table's name, as in its URL. */
    name, streams, 
    /** Its key and field kinds (from the client's `schema`). */
    schema) {
        this.client = client;
        this.name = name;
        this.streams = streams;
        this.schema = schema;
    }
    async list(query = {}) {
        const response = await this.client.transport.request("GET", this.path(), { query: encodeQuery(query) });
        if (!query.count)
            return response.body;
        const header = response.headers.get("x-total-count");
        return { rows: response.body, total: header === null ? response.body.length : Number(header) };
    }
    /** `GET /{table}/{key}`; a row you may not read is a 404, like a missing one. The keys "."
     * and ".." cannot be in a URL's path (see `path`): those are read by a filtered list. */
    async get(key) {
        if (isDotSegment(key)) {
            const where = { [this.schema.primaryKey]: key };
            const [row] = await this.list({ where, limit: 1 });
            if (row === undefined) {
                throw new CapebaseError(404, `${this.name} ${JSON.stringify(key)} not found`, {
                    kind: "not_found",
                    method: "GET",
                    url: this.client.transport.url(this.path()),
                });
            }
            return row;
        }
        return this.client.request("GET", this.path(key));
    }
    /** `POST /{table}`: the stored row (auth fields and defaults filled in). */
    async create(values) {
        return this.client.request("POST", this.path(), { json: values });
    }
    /** `PATCH /{table}/{key}`: only the fields sent change. */
    async update(key, values) {
        return this.client.request("PATCH", this.path(key), { json: values });
    }
    /** `DELETE /{table}/{key}`. */
    async delete(key) {
        await this.client.request("DELETE", this.path(key));
    }
    /** Follow this table's changes (see `CapebaseClient.subscribe`). */
    subscribe(options, handler) {
        const { filters, ...rest } = options;
        const { local } = splitForStream(filters);
        const text = Object.keys(local);
        if (text.length > 0) {
            throw new CapebaseError(0, `Streams filter with comparison operators only; not on ${text.join(", ")} (a live query can)`, {
                kind: "usage",
            });
        }
        return new Subscription(this.streams, this.name, encodeWhere(filters), handler, rest);
    }
    /** A live query of this table (see `LiveQuery`). */
    live(query = {}) {
        const fetchPage = async (page) => {
            const response = await this.client.transport.request("GET", this.path(), { query: encodeQuery(page) });
            const header = response.headers.get("x-total-count");
            return { rows: response.body, total: header === null ? null : Number(header) };
        };
        return new LiveQuery(this.streams, this.name, this.schema, fetchPage, query);
    }
    /**
     * `/{table}` or `/{table}/{key}`. A URL parser resolves the path segments "." and ".."
     * (and their escapes, `%2E`) before the request is sent, so `/doc/..` would be `/`: such
     * keys are refused rather than sent to another route.
     */
    path(key) {
        const base = `/${encodeURIComponent(this.name)}`;
        if (key === undefined)
            return base;
        if (isDotSegment(key)) {
            throw new CapebaseError(0, `The key ${JSON.stringify(key)} cannot be sent in a URL path (it is resolved as a dot segment); only get() reads such a row`, {
                kind: "usage",
            });
        }
        return `${base}/${encodeURIComponent(String(key))}`;
    }
}
