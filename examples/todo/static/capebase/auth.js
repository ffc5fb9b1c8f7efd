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
    constructor(options = {}) {
        this.prefix = (options.prefix ?? "/auth").replace(/\/+$/, "");
        this.storage = options.storage ?? null;
        this.storageKey = options.storageKey ?? "capebase-session";
        this.refreshMargin = options.refreshMargin;
        this.retryDelay = options.retryDelay ?? 5_000;
        this.current = this.load();
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
        const session = this.current;
        if (session === null)
            return null;
        if (Date.now() >= session.refreshAt) {
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
    }
    async exchange() {
        const session = this.current;
        if (session === null)
            throw new CapebaseError(401, "Not signed in", { kind: "unauthorized" });
        let response;
        try {
            response = await this.http().request("POST", `${this.prefix}/refresh`, {
                json: { refresh_token: session.refreshToken },
                authenticate: false,
            });
        }
        catch (error) {
            if (error instanceof CapebaseError && error.status === 401 && this.current === session) {
                this.set(null, "expired");
            }
            else if (this.current === session) {
                this.timer?.cancel();
                this.timer = startTimer(() => void this.refresh().catch(() => undefined), this.retryDelay);
            }
            throw error;
        }
        if (this.current !== session)
            throw new CapebaseError(401, "Signed out meanwhile", { kind: "unauthorized" });
        this.set(this.fromTokens(response.body, session.user), "refreshed");
        return this.current;
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
    set(session, event) {
        this.current = session;
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
        const wait = Math.max(0, session.refreshAt - Date.now());
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
