// A live query: the result of a list query, kept in step with the change stream. Rows that
// enter the query's view are placed by its order, rows that leave are dropped, and when the
// client cannot know what fills a gap in a limited window it fetches the list again.
import { CapebaseError } from "./errors.js";
import { matchesWhere, rowComparator } from "./order.js";
import { encodeWhere, orderTerms, splitForStream } from "./query.js";
import { Subscription } from "./subscription.js";
import { backoff, startTimer } from "./timers.js";
/** @deprecated capebase's default page size, which `CrudConfig(default_page_size=...)` may
 * change: a live query without `limit` now asks the server for its own page instead. */
export const DEFAULT_LIMIT = 100;
/**
 * The rows of a list query, kept current. Read `rows`; `onChange` tells when they changed.
 *
 * The stream filters on the server what it can (comparison operators); text operators
 * (`contains`, `like`, ...) are applied here. `ilike`/`icontains` fold case as every database
 * does only for ASCII letters: a change whose text or pattern has another cased letter fetches
 * the rows again (SQLite folds ASCII only; PostgreSQL and MariaDB fold more, each its own way).
 * With an `offset`, every change fetches the page again. Without a `limit` the window is the
 * server's default page: its size is learnt from `X-Total-Count` (which cross-origin apps must
 * expose, see the CORS guide); without that header every change fetches the rows again.
 */
export class LiveQuery {
    schema;
    fetchPage;
    query;
    /** Whether the first fetch has completed. */
    loaded = false;
    /** The number of matching rows when the query asked for `count: true`, else null. */
    total = null;
    /** The last error: a failed fetch or connection (retried), or why the query failed. */
    error = null;
    /** Resolves after the first fetch; rejects if the query fails (a bad filter). */
    ready;
    items = [];
    snapshot = Object.freeze([]);
    complete = false;
    buffer = null;
    loading = null;
    reloadWanted = false;
    recountWanted = false;
    counting = false;
    closed = false;
    notifyPending = false;
    /** The window's size: the query's limit, the server's page size once seen, else null. */
    limit;
    /** Without a limit: the most rows the server returned as a whole list (its page is larger). */
    atLeast = 0;
    /**
     * Whether `limit` is the server's page size as learnt from a fetch, not the query's own. The
     * server counts in a statement of its own, so a row committed between the two makes a short
     * page look full: a learnt size is a guess, checked again whenever a row may lie beyond it.
     */
    learnt = false;
    /** Without a limit and without X-Total-Count: the window is unknown, every change reloads. */
    blind = false;
    compare;
    local;
    hasLocal;
    subscription;
    changeListeners = new Set();
    stateListeners = new Set();
    settle;
    constructor(context, table, schema, fetchPage, query) {
        this.schema = schema;
        this.fetchPage = fetchPage;
        this.query = query;
        this.ready = new Promise((resolve, reject) => {
            this.settle = { resolve, reject };
        });
        this.ready.catch(() => undefined); // a caller that never awaits it must not see an unhandled rejection
        this.limit = query.limit ?? null;
        this.compare = rowComparator(orderTerms(query.orderBy), schema, query.nulls);
        const { stream, local } = splitForStream(query.where);
        this.local = local;
        this.hasLocal = Object.keys(local).length > 0;
        const options = {
            onOpen: (resumed) => {
                if (!resumed)
                    this.reload();
            },
            onReset: () => this.reload(),
            onState: (state, error) => {
                if (state === "failed")
                    this.fail(error);
                for (const listener of [...this.stateListeners])
                    listener(state, error);
            },
        };
        if (query.transport !== undefined)
            options.transport = query.transport;
        if (query.idleTimeout !== undefined)
            options.idleTimeout = query.idleTimeout;
        this.subscription = new Subscription(context, table, encodeWhere(stream), (change) => this.receive(change), options);
        this.untrack = context.track(this);
    }
    untrack;
    /** The current rows, in the query's order (a new frozen array after each change). */
    get rows() {
        return this.snapshot;
    }
    /** The stream's connection state. */
    get state() {
        return this.subscription.state;
    }
    /** Call `listener` with the rows after they change (several changes in one tick: once). */
    onChange(listener) {
        this.changeListeners.add(listener);
        return () => this.changeListeners.delete(listener);
    }
    /** Call `listener` when the connection state changes. */
    onStateChange(listener) {
        this.stateListeners.add(listener);
        return () => this.stateListeners.delete(listener);
    }
    /** Fetch the rows again now (they are kept current without it). */
    refresh() {
        this.reload();
        return this.loading ?? Promise.resolve();
    }
    /** Stop following. */
    close() {
        this.closed = true;
        this.subscription.close();
        this.untrack();
    }
    receive(change) {
        if (this.buffer !== null) {
            this.buffer.push(change);
            return;
        }
        if (!this.loaded)
            return; // before the first fetch: what it returns already has it
        this.apply(change);
        this.changed();
    }
    /** Apply one change to the window; fetch again when the window has a gap it cannot fill. */
    apply(change) {
        if ((this.query.offset ?? 0) > 0 || this.blind) {
            this.reload(); // rows before the page shift it, or the page's size is unknown: ask
            return;
        }
        const key = this.schema.primaryKey;
        const index = this.items.findIndex((row) => sameKey(row[key], change.payload[key]));
        const enters = change.event !== "DELETE" && (!this.hasLocal || matchesWhere(change.payload, this.local, this.schema));
        const was = change.event === "INSERT"
            ? false
            : !this.hasLocal || (change.old !== null ? matchesWhere(change.old, this.local, this.schema) : index >= 0);
        if (enters === null || was === null) {
            this.reload(); // a text match the database decides its own way
            return;
        }
        if (this.total !== null) {
            if (enters !== was) {
                this.total += Number(enters) - Number(was);
                this.recount();
            }
        }
        if (index >= 0)
            this.items.splice(index, 1);
        if (!enters) {
            if (index >= 0)
                this.checkGap();
            return;
        }
        const row = change.payload;
        let position = this.items.findIndex((other) => this.compare(row, other) < 0);
        if (position === -1)
            position = this.items.length;
        if (position === this.items.length && !this.complete) {
            // It sorts after every row we hold, and rows we do not hold may come before it.
            this.checkGap();
            return;
        }
        this.items.splice(position, 0, row);
        if (this.limit !== null && this.items.length > this.limit) {
            this.items.length = this.limit;
            this.complete = false;
        }
        else if (this.limit === null && this.items.length > this.atLeast) {
            this.reload(); // more rows than the server has shown at once: does its page hold them?
        }
    }
    checkGap() {
        if (!this.complete && (this.limit === null || this.learnt || this.items.length < this.limit)) {
            this.reload();
        }
    }
    reload() {
        this.reloadWanted = true;
        if (this.loading !== null || this.closed)
            return;
        this.loading = this.load().finally(() => {
            this.loading = null;
        });
    }
    async load() {
        let attempt = 0;
        while (this.reloadWanted && !this.closed) {
            this.reloadWanted = false;
            // Changes delivered before this fetch is sent are in its answer; later ones wait here.
            this.buffer = [];
            const { where, orderBy, offset, count } = this.query;
            // Without a limit the server's default page: the count tells whether it is all.
            const query = {};
            if (this.query.limit !== undefined)
                query.limit = this.query.limit;
            if (where !== undefined)
                query.where = where;
            if (orderBy !== undefined)
                query.orderBy = orderBy;
            if (offset !== undefined)
                query.offset = offset;
            if (count || this.query.limit === undefined)
                query.count = true;
            let result;
            try {
                result = await this.fetchPage(query);
            }
            catch (error) {
                const failure = error instanceof CapebaseError ? error : CapebaseError.network(error);
                if (isPermanent(failure)) {
                    this.buffer = null;
                    this.fail(failure);
                    this.subscription.close();
                    return;
                }
                this.error = failure;
                this.reloadWanted = true;
                await new Promise((resolve) => startTimer(resolve, backoff(attempt++, 250, 5000), false));
                continue;
            }
            if (this.closed)
                return;
            this.error = null;
            this.items = result.rows;
            this.total = count ? (result.total ?? result.rows.length) : null;
            this.window(result, offset ?? 0);
            const buffered = this.buffer;
            this.buffer = null;
            for (const change of buffered)
                this.apply(change);
            if (!this.loaded) {
                this.loaded = true;
                this.settle.resolve();
            }
            this.changed();
        }
    }
    /** What the fetch `result` says of the window: whether it holds every row after `offset`,
     * and, without a limit, the server's page size. */
    window(result, offset) {
        const rows = result.rows.length;
        if (this.query.limit !== undefined) {
            this.complete = rows < this.query.limit;
        }
        else if (result.total === null) {
            this.blind = true;
            this.complete = false;
        }
        else if (result.total > offset + rows) {
            this.limit = rows; // a full page, and more rows behind it: the server's page size
            this.learnt = true;
            this.complete = false;
        }
        else {
            if (this.learnt) {
                this.limit = null; // the whole list came back: a size learnt before was a short page
                this.learnt = false;
            }
            this.atLeast = Math.max(this.atLeast, rows);
            this.complete = true;
        }
    }
    /**
     * Count the matching rows again. A change may reach the stream after a fetch that already
     * counted it: applied to the rows that is harmless (the same image again), added to a count
     * it is not. So every change of the count asks the server, and the last answer, asked after
     * the last change arrived, is exact.
     */
    recount() {
        this.recountWanted = true;
        if (this.counting || this.closed)
            return;
        this.counting = true;
        void (async () => {
            while (this.recountWanted && !this.closed) {
                this.recountWanted = false;
                const query = { limit: 0, count: true };
                if (this.query.where !== undefined)
                    query.where = this.query.where;
                try {
                    const { total } = await this.fetchPage(query);
                    if (!this.recountWanted && !this.closed && this.total !== null && total !== null && this.total !== total) {
                        this.total = total;
                        this.changed();
                    }
                }
                catch {
                    // The next change, or the next fetch of the rows, counts again.
                }
            }
            this.counting = false;
        })();
    }
    fail(error) {
        this.error = error;
        this.settle.reject(error ?? new CapebaseError(0, "The live query failed", { kind: "usage" }));
    }
    changed() {
        this.snapshot = Object.freeze([...this.items]);
        if (this.notifyPending)
            return;
        this.notifyPending = true;
        queueMicrotask(() => {
            this.notifyPending = false;
            if (this.closed)
                return;
            for (const listener of [...this.changeListeners])
                listener(this.snapshot);
        });
    }
}
function sameKey(a, b) {
    return a === b || (a !== null && a !== undefined && b !== null && b !== undefined && String(a) === String(b));
}
function isPermanent(error) {
    return error.status >= 400 && error.status < 500 && error.status !== 401 && error.status !== 408 && error.status !== 429;
}
