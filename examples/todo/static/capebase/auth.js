// Who the client acts as. An AuthProvider hands out the bearer token of each request and stream;
// PasswordAuth is one for capebase's built-in auth (sign up, sign in, refresh before expiry,
// sign out, stream tickets), tokenAuth wraps any other token source.
import { CapebaseError } from "./errors.js";
import { startTimer } from "./timers.js";
/**
 * Auth by a token you get elsewhere: a string, or a function returning one (or null for
 * anonymous). `onUnauthorized` may renew it; call `changed()` after it changes by itself so that
 * open streams reconnect.
 */
export function tokenAuth(token, options = {}) {
    const listeners = new Set();
    const provider = {
        getToken: async () => (typeof token === "function" ? await token() : token),
        onTokenChange(listener) {
            listeners.add(listener);
            return () => listeners.delete(listener);
        },
        changed() {
            for (const listener of [...listeners])
                listener();
        },
    };
    if (options.onUnauthorized)
        provider.onUnauthorized = options.onUnauthorized;
    return provider;
}
/** Renew at most this often (ms), however short the access token's lifetime. */
export const MIN_RENEWAL_INTERVAL = 1_000;
/** How long an instance may hold the shared store's renewal lock (ms). */
const LOCK_LIFETIME = 10_000;
const LOCK_POLL = 50;
/**
 * capebase's built-in password auth (`CapeBase(auth=PasswordAuth(...))`): sign up, sign in,
 * sign out, and an access token renewed before it expires.
 */
export class PasswordAuth {
    transport = null;
    current = null;
    refreshing = null;
    timer = null;
    listeners = new Set();
    tokenListeners = new Set();
    prefix;
    storage;
    storageKey;
    refreshMargin;
    retryDelay;
    /** When the last exchange started: renewals are at least MIN_RENEWAL_INTERVAL apart. */
    lastRenewal = 0;
    lockOwner = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    unlistenStorage;
    constructor(options = {}) {
        this.prefix = (options.prefix ?? "/auth").replace(/\/+$/, "");
        this.storage = options.storage ?? null;
        this.storageKey = options.storageKey ?? "capebase-session";
        this.refreshMargin = options.refreshMargin;
        this.retryDelay = options.retryDelay ?? 5_000;
        this.current = this.load();
        this.unlistenStorage = onStorage(this.storage, this.storageKey, () => this.adoptStored());
    }
    attach(transport) {
        this.transport = transport;
        this.schedule();
    }
    /** The current sign-in, or null. */
    get session() {
        return this.current;
    }
    /** The signed-in user, or null. */
    get user() {
        return this.current?.user ?? null;
    }
    /** Call `listener` on sign-in, refresh, sign-out and a sign-in the server ended. */
    onChange(listener) {
        this.listeners.add(listener);
        return () => this.listeners.delete(listener);
    }
    onTokenChange(listener) {
        this.tokenListeners.add(listener);
        return () => this.tokenListeners.delete(listener);
    }
    /** Create an account (`POST /auth/signup`). It does not sign in: call `signIn` next. */
    async signUp(account) {
        const json = { email: account.email, password: account.password };
        if (account.username)
            json["username"] = account.username;
        const response = await this.http().request("POST", `${this.prefix}/signup`, {
            json,
            authenticate: false,
        });
        return response.body;
    }
    /** Sign in with an email or username and a password (`POST /auth/token`), then load the user. */
    async signIn(login, password) {
        const response = await this.http().request("POST", `${this.prefix}/token`, {
            form: { username: login, password },
            authenticate: false,
        });
        const tokens = response.body;
        const me = await this.http().request("GET", `${this.prefix}/me`, {
            headers: { Authorization: `Bearer ${tokens.access_token}` },
            authenticate: false,
        });
        this.set(this.fromTokens(tokens, me.body), "signed_in");
        return this.current;
    }
    /**
     * Exchange the refresh token for new tokens now (`POST /auth/refresh`). Concurrent calls
     * share one exchange. A refused refresh token ends the sign-in (event "expired") and throws.
     */
    refresh() {
        if (this.refreshing === null) {
            this.refreshing = this.exchange().finally(() => {
                this.refreshing = null;
            });
        }
        return this.refreshing;
    }
    /** End the sign-in here and on the server (`POST /auth/logout`; its streams end too). */
    async signOut() {
        const session = this.current;
        if (session === null)
            return;
        this.set(null, "signed_out");
        await this.http()
            .request("POST", `${this.prefix}/logout`, {
            json: { refresh_token: session.refreshToken },
            headers: { Authorization: `Bearer ${session.accessToken}` },
            authenticate: false,
        })
            .catch(() => undefined); // already ended, or the server is away: forgotten here anyway
    }
    /** The signed-in user as the server has it now (`GET /auth/me`). */
    async me() {
        return (await this.http().request("GET", `${this.prefix}/me`)).body;
    }
    /** A single-use ticket that opens one stream within 30 s (`POST /auth/stream-ticket`). */
    async streamTicket() {
        const response = await this.http().request("POST", `${this.prefix}/stream-ticket`);
        return response.body.ticket;
    }
    async getToken() {
        this.adoptStored();
        const session = this.current;
        if (session === null)
            return null;
        const now = Date.now();
        // Renewed less than a second ago and not expired yet: no new exchange for this request.
        const throttled = this.refreshing === null && now - this.lastRenewal < MIN_RENEWAL_INTERVAL && now < session.expiresAt;
        if (now >= session.refreshAt && !throttled) {
            try {
                return (await this.refresh()).accessToken;
            }
            catch (error) {
                // Not refused, just unreachable: the current token may still do.
                if (error instanceof CapebaseError && error.status === 0 && this.current) {
                    return this.current.accessToken;
                }
                if (this.current === null)
                    return null;
                throw error;
            }
        }
        return session.accessToken;
    }
    async onUnauthorized(token) {
        if (this.current === null)
            return false;
        if (this.current.accessToken !== token)
            return true; // renewed meanwhile
        try {
            await this.refresh();
            return true;
        }
        catch {
            return false;
        }
    }
    async streamParams() {
        return this.current === null ? {} : { ticket: await this.streamTicket() };
    }
    close() {
        this.timer?.cancel();
        this.timer = null;
        this.unlistenStorage();
    }
    async exchange() {
        const wait = this.lastRenewal + MIN_RENEWAL_INTERVAL - Date.now();
        // Not a background timer: a request may be waiting for this renewal.
        if (wait > 0)
            await new Promise((resolve) => startTimer(resolve, wait, false));
        const before = this.current;
        this.adoptStored();
        let session = this.current;
        if (session === null)
            throw new CapebaseError(401, "Not signed in", { kind: "unauthorized" });
        // Another instance sharing the store renewed it meanwhile: its tokens are ours.
        if (session !== before && Date.now() < session.refreshAt)
            return session;
        const locked = await this.lock(session);
        session = this.current;
        if (session === null)
            throw new CapebaseError(401, "Signed out meanwhile", { kind: "unauthorized" });
        if (!locked)
            return session; // renewed by the lock's holder
        this.lastRenewal = Date.now();
        let response;
        try {
            response = await this.http().request("POST", `${this.prefix}/refresh`, {
                json: { refresh_token: session.refreshToken },
                authenticate: false,
            });
        }
        catch (error) {
            this.unlock();
            this.adoptStored();
            if (this.current !== session && this.current !== null)
                return this.current;
            if (error instanceof CapebaseError && error.status === 401 && this.current === session) {
                this.set(null, "expired");
            }
            else if (this.current === session) {
                this.timer?.cancel();
                this.timer = startTimer(() => void this.refresh().catch(() => undefined), this.retryDelay);
            }
            throw error;
        }
        if (this.current !== session) {
            this.unlock();
            throw new CapebaseError(401, "Signed out meanwhile", { kind: "unauthorized" });
        }
        this.set(this.fromTokens(response.body, session.user), "refreshed");
        this.unlock();
        return this.current;
    }
    /**
     * Take the shared store's renewal lock for `session`'s refresh token: true once held (the
     * caller exchanges the token), false when another instance renewed it meanwhile (its
     * session is adopted). Without a store there is no one to share with.
     */
    async lock(session) {
        const storage = this.storage;
        if (storage === null)
            return true;
        const key = `${this.storageKey}:renewing`;
        for (;;) {
            this.adoptStored();
            if (this.current !== session)
                return false;
            const held = readLock(storage.getItem(key));
            if (held === null || held.owner === this.lockOwner || held.until <= Date.now()) {
                storage.setItem(key, JSON.stringify({ owner: this.lockOwner, until: Date.now() + LOCK_LIFETIME }));
                // Two tabs may have written at once: the last write holds it. A store that keeps no
                // lock (full, or read-only) shares nothing to wait for.
                const now = readLock(storage.getItem(key));
                if (now === null || now.owner === this.lockOwner)
                    return true;
            }
            await new Promise((resolve) => startTimer(resolve, LOCK_POLL, false));
        }
    }
    unlock() {
        const key = `${this.storageKey}:renewing`;
        if (this.storage !== null && readLock(this.storage.getItem(key))?.owner === this.lockOwner)
            this.storage.removeItem(key);
    }
    /** Take the stored session when another instance sharing the store changed it. */
    adoptStored() {
        if (this.storage === null)
            return;
        const stored = this.load();
        const current = this.current;
        if (stored === null) {
            if (current !== null && this.storage.getItem(this.storageKey) === null)
                this.set(null, "signed_out", false);
            return;
        }
        if (current !== null && stored.refreshToken === current.refreshToken)
            return;
        this.set(stored, current === null ? "signed_in" : "refreshed", false);
    }
    fromTokens(tokens, user) {
        const now = Date.now();
        // expires_in is whole seconds, and the token's own expiry may be up to a second sooner.
        const lifetime = Math.max(0, tokens.expires_in - 1) * 1000;
        const margin = this.refreshMargin === undefined ? Math.min(60_000, lifetime * 0.2) : Math.min(this.refreshMargin, lifetime * 0.9);
        return {
            accessToken: tokens.access_token,
            refreshToken: tokens.refresh_token,
            expiresAt: now + lifetime,
            refreshAt: now + lifetime - margin,
            user,
        };
    }
    set(session, event, persist = true) {
        this.current = session;
        if (persist)
            this.save();
        this.schedule();
        for (const listener of [...this.listeners])
            listener(session, event);
        for (const listener of [...this.tokenListeners])
            listener();
    }
    schedule() {
        this.timer?.cancel();
        this.timer = null;
        const session = this.current;
        if (session === null || this.transport === null)
            return;
        const now = Date.now();
        const wait = Math.max(0, session.refreshAt - now, this.lastRenewal + MIN_RENEWAL_INTERVAL - now);
        this.timer = startTimer(() => void this.refresh().catch(() => undefined), wait);
    }
    load() {
        try {
            const raw = this.storage?.getItem(this.storageKey);
            const session = raw ? JSON.parse(raw) : null;
            return session && typeof session.refreshToken === "string" ? session : null;
        }
        catch {
            return null;
        }
    }
    save() {
        if (this.storage === null)
            return;
        if (this.current === null)
            this.storage.removeItem(this.storageKey);
        else
            this.storage.setItem(this.storageKey, JSON.stringify(this.current));
    }
    http() {
        if (this.transport === null) {
            throw new CapebaseError(0, "PasswordAuth is not attached: pass it to createClient(url, { auth })", {
                kind: "usage",
            });
        }
        return this.transport;
    }
}
function readLock(raw) {
    try {
        const lock = raw ? JSON.parse(raw) : null;
        return lock && typeof lock.owner === "string" && typeof lock.until === "number" ? { owner: lock.owner, until: lock.until } : null;
    }
    catch {
        return null;
    }
}
/** Follow another tab's changes of `key` in `storage` (a browser's `storage` event). */
function onStorage(storage, key, listener) {
    const target = globalThis;
    if (storage === null || typeof target.addEventListener !== "function")
        return () => undefined;
    const handler = (event) => {
        if (event.storageArea === storage && (event.key === key || event.key === null))
            listener();
    };
    target.addEventListener("storage", handler);
    return () => target.removeEventListener?.("storage", handler);
}
