// Who the client acts as. An AuthProvider hands out the bearer token of each request and stream;
// PasswordAuth is one for capebase's built-in auth (sign up, sign in, refresh before expiry,
// sign out, stream tickets), tokenAuth wraps any other token source.

import { CapebaseError } from "./errors.js";
import type { Transport } from "./http.js";
import { type Timer, startTimer } from "./timers.js";

/**
 * The auth a client uses. Only `getToken` is required: bring your own (a fastapi-users JWT, an
 * API gateway's token) with `tokenAuth(...)` or an object of this shape.
 */
export interface AuthProvider {
  /** The bearer token for the next request or stream, or null for an anonymous caller. */
  getToken(): Promise<string | null>;
  /**
   * The server refused `token` (401). Renew it and resolve true to have the request sent again
   * (once), or false to give up.
   */
  onUnauthorized?(token: string | null): Promise<boolean>;
  /**
   * Query parameters that authenticate a stream which cannot send headers (a WebSocket).
   * Default: `{access_token: token}`. PasswordAuth uses a single-use stream ticket instead.
   */
  streamParams?(): Promise<Record<string, string>>;
  /** Call `listener` whenever the token changes; streams then reconnect with the new one. */
  onTokenChange?(listener: () => void): () => void;
  /** Called once by createClient with the transport the provider may use. */
  attach?(transport: Transport): void;
  /** Stop timers (createClient's `close()` calls it). */
  close?(): void;
}

/**
 * Auth by a token you get elsewhere: a string, or a function returning one (or null for
 * anonymous). `onUnauthorized` may renew it; call `changed()` after it changes by itself so that
 * open streams reconnect.
 */
export function tokenAuth(
  token: string | null | (() => string | null | Promise<string | null>),
  options: { onUnauthorized?: (token: string | null) => Promise<boolean> } = {},
): AuthProvider & { changed(): void } {
  const listeners = new Set<() => void>();
  const provider: AuthProvider & { changed(): void } = {
    getToken: async () => (typeof token === "function" ? await token() : token),
    onTokenChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    changed() {
      for (const listener of [...listeners]) listener();
    },
  };
  if (options.onUnauthorized) provider.onUnauthorized = options.onUnauthorized;
  return provider;
}

/** A user of the built-in auth, as `GET /auth/me` answers. */
export interface User {
  id: string;
  email: string;
  username: string | null;
  role: string | null;
  is_active: boolean;
  created_at: string;
}

/** A sign-in: its tokens, when the access token expires, and the user (epoch milliseconds). */
export interface Session {
  accessToken: string;
  refreshToken: string;
  expiresAt: number;
  /** When PasswordAuth renews the access token (before `expiresAt`). */
  refreshAt: number;
  user: User | null;
}

/** Where PasswordAuth keeps its session: `sessionStorage`, `localStorage`, or your own. */
export interface SessionStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export type AuthEvent = "signed_in" | "refreshed" | "signed_out" | "expired";

export interface PasswordAuthOptions {
  /** The auth routes' prefix (PasswordAuth's `prefix`, default "/auth"). */
  prefix?: string;
  /**
   * Where the session is kept across page loads (default: memory only). Instances sharing a
   * store (tabs sharing `localStorage`, clients of one page) share one sign-in: each reads the
   * store again before renewing, takes turns through a lock kept there, and follows the
   * browser's `storage` events, so that a refresh token is never spent twice (the server
   * answers that by ending the sign-in). A duplicated tab's copy of `sessionStorage` is not
   * shared: both copies renewing the same token end the sign-in.
   */
  storage?: SessionStore | null;
  storageKey?: string;
  /** Renew the access token this long before it expires (ms, at most 90% of its lifetime).
   * Default: 60 s, or 20% of a lifetime shorter than 5 minutes. */
  refreshMargin?: number;
  /** After a refresh that failed without being refused (the server was away), try again
   * after this long (ms, default 5 s). */
  retryDelay?: number;
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
export class PasswordAuth implements AuthProvider {
  private transport: Transport | null = null;
  private current: Session | null = null;
  private refreshing: Promise<Session> | null = null;
  private timer: Timer | null = null;
  private readonly listeners = new Set<(session: Session | null, event: AuthEvent) => void>();
  private readonly tokenListeners = new Set<() => void>();
  private readonly prefix: string;
  private readonly storage: SessionStore | null;
  private readonly storageKey: string;
  private readonly refreshMargin: number | undefined;
  private readonly retryDelay: number;
  /** When the last exchange started: renewals are at least MIN_RENEWAL_INTERVAL apart. */
  private lastRenewal = 0;
  private readonly lockOwner = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  private readonly unlistenStorage: () => void;

  constructor(options: PasswordAuthOptions = {}) {
    this.prefix = (options.prefix ?? "/auth").replace(/\/+$/, "");
    this.storage = options.storage ?? null;
    this.storageKey = options.storageKey ?? "capebase-session";
    this.refreshMargin = options.refreshMargin;
    this.retryDelay = options.retryDelay ?? 5_000;
    this.current = this.load();
    this.unlistenStorage = onStorage(this.storage, this.storageKey, () => this.adoptStored());
  }

  attach(transport: Transport): void {
    this.transport = transport;
    this.schedule();
  }

  /** The current sign-in, or null. */
  get session(): Session | null {
    return this.current;
  }

  /** The signed-in user, or null. */
  get user(): User | null {
    return this.current?.user ?? null;
  }

  /** Call `listener` on sign-in, refresh, sign-out and a sign-in the server ended. */
  onChange(listener: (session: Session | null, event: AuthEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onTokenChange(listener: () => void): () => void {
    this.tokenListeners.add(listener);
    return () => this.tokenListeners.delete(listener);
  }

  /** Create an account (`POST /auth/signup`). It does not sign in: call `signIn` next. */
  async signUp(account: { email: string; password: string; username?: string | null }): Promise<User> {
    const json: Record<string, string> = { email: account.email, password: account.password };
    if (account.username) json["username"] = account.username;
    const response = await this.http().request<User>("POST", `${this.prefix}/signup`, {
      json,
      authenticate: false,
    });
    return response.body;
  }

  /** Sign in with an email or username and a password (`POST /auth/token`), then load the user. */
  async signIn(login: string, password: string): Promise<Session> {
    const response = await this.http().request<TokenPair>("POST", `${this.prefix}/token`, {
      form: { username: login, password },
      authenticate: false,
    });
    const tokens = response.body;
    const me = await this.http().request<User>("GET", `${this.prefix}/me`, {
      headers: { Authorization: `Bearer ${tokens.access_token}` },
      authenticate: false,
    });
    this.set(this.fromTokens(tokens, me.body), "signed_in");
    return this.current as Session;
  }

  /**
   * Exchange the refresh token for new tokens now (`POST /auth/refresh`). Concurrent calls
   * share one exchange. A refused refresh token ends the sign-in (event "expired") and throws.
   */
  refresh(): Promise<Session> {
    if (this.refreshing === null) {
      this.refreshing = this.exchange().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  /** End the sign-in here and on the server (`POST /auth/logout`; its streams end too). */
  async signOut(): Promise<void> {
    const session = this.current;
    if (session === null) return;
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
  async me(): Promise<User> {
    return (await this.http().request<User>("GET", `${this.prefix}/me`)).body;
  }

  /** A single-use ticket that opens one stream within 30 s (`POST /auth/stream-ticket`). */
  async streamTicket(): Promise<string> {
    const response = await this.http().request<{ ticket: string }>("POST", `${this.prefix}/stream-ticket`);
    return response.body.ticket;
  }

  async getToken(): Promise<string | null> {
    this.adoptStored();
    const session = this.current;
    if (session === null) return null;
    const now = Date.now();
    // Renewed less than a second ago and not expired yet: no new exchange for this request.
    const throttled = this.refreshing === null && now - this.lastRenewal < MIN_RENEWAL_INTERVAL && now < session.expiresAt;
    if (now >= session.refreshAt && !throttled) {
      try {
        return (await this.refresh()).accessToken;
      } catch (error) {
        // Not refused, just unreachable: the current token may still do.
        if (error instanceof CapebaseError && error.status === 0 && this.current) {
          return this.current.accessToken;
        }
        if (this.current === null) return null;
        throw error;
      }
    }
    return session.accessToken;
  }

  async onUnauthorized(token: string | null): Promise<boolean> {
    if (this.current === null) return false;
    if (this.current.accessToken !== token) return true; // renewed meanwhile
    try {
      await this.refresh();
      return true;
    } catch {
      return false;
    }
  }

  async streamParams(): Promise<Record<string, string>> {
    return this.current === null ? {} : { ticket: await this.streamTicket() };
  }

  close(): void {
    this.timer?.cancel();
    this.timer = null;
    this.unlistenStorage();
  }

  private async exchange(): Promise<Session> {
    const wait = this.lastRenewal + MIN_RENEWAL_INTERVAL - Date.now();
    // Not a background timer: a request may be waiting for this renewal.
    if (wait > 0) await new Promise<void>((resolve) => startTimer(resolve, wait, false));
    const before = this.current;
    this.adoptStored();
    let session = this.current;
    if (session === null) throw new CapebaseError(401, "Not signed in", { kind: "unauthorized" });
    // Another instance sharing the store renewed it meanwhile: its tokens are ours.
    if (session !== before && Date.now() < session.refreshAt) return session;
    const locked = await this.lock(session);
    session = this.current;
    if (session === null) throw new CapebaseError(401, "Signed out meanwhile", { kind: "unauthorized" });
    if (!locked) return session; // renewed by the lock's holder
    this.lastRenewal = Date.now();
    let response;
    try {
      response = await this.http().request<TokenPair>("POST", `${this.prefix}/refresh`, {
        json: { refresh_token: session.refreshToken },
        authenticate: false,
      });
    } catch (error) {
      this.unlock();
      this.adoptStored();
      if (this.current !== session && this.current !== null) return this.current;
      if (error instanceof CapebaseError && error.status === 401 && this.current === session) {
        this.set(null, "expired");
      } else if (this.current === session) {
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
    return this.current as Session;
  }

  /**
   * Take the shared store's renewal lock for `session`'s refresh token: true once held (the
   * caller exchanges the token), false when another instance renewed it meanwhile (its
   * session is adopted). Without a store there is no one to share with.
   */
  private async lock(session: Session): Promise<boolean> {
    const storage = this.storage;
    if (storage === null) return true;
    const key = `${this.storageKey}:renewing`;
    for (;;) {
      this.adoptStored();
      if (this.current !== session) return false;
      const held = readLock(storage.getItem(key));
      if (held === null || held.owner === this.lockOwner || held.until <= Date.now()) {
        storage.setItem(key, JSON.stringify({ owner: this.lockOwner, until: Date.now() + LOCK_LIFETIME }));
        // Two tabs may have written at once: the last write holds it. A store that keeps no
        // lock (full, or read-only) shares nothing to wait for.
        const now = readLock(storage.getItem(key));
        if (now === null || now.owner === this.lockOwner) return true;
      }
      await new Promise<void>((resolve) => startTimer(resolve, LOCK_POLL, false));
    }
  }

  private unlock(): void {
    const key = `${this.storageKey}:renewing`;
    if (this.storage !== null && readLock(this.storage.getItem(key))?.owner === this.lockOwner) this.storage.removeItem(key);
  }

  /** Take the stored session when another instance sharing the store changed it. */
  private adoptStored(): void {
    if (this.storage === null) return;
    const stored = this.load();
    const current = this.current;
    if (stored === null) {
      if (current !== null && this.storage.getItem(this.storageKey) === null) this.set(null, "signed_out", false);
      return;
    }
    if (current !== null && stored.refreshToken === current.refreshToken) return;
    this.set(stored, current === null ? "signed_in" : "refreshed", false);
  }

  private fromTokens(tokens: TokenPair, user: User | null): Session {
    const now = Date.now();
    // expires_in is whole seconds, and the token's own expiry may be up to a second sooner.
    const lifetime = Math.max(0, tokens.expires_in - 1) * 1000;
    const margin =
      this.refreshMargin === undefined ? Math.min(60_000, lifetime * 0.2) : Math.min(this.refreshMargin, lifetime * 0.9);
    return {
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token,
      expiresAt: now + lifetime,
      refreshAt: now + lifetime - margin,
      user,
    };
  }

  private set(session: Session | null, event: AuthEvent, persist = true): void {
    this.current = session;
    if (persist) this.save();
    this.schedule();
    for (const listener of [...this.listeners]) listener(session, event);
    for (const listener of [...this.tokenListeners]) listener();
  }

  private schedule(): void {
    this.timer?.cancel();
    this.timer = null;
    const session = this.current;
    if (session === null || this.transport === null) return;
    const now = Date.now();
    const wait = Math.max(0, session.refreshAt - now, this.lastRenewal + MIN_RENEWAL_INTERVAL - now);
    this.timer = startTimer(() => void this.refresh().catch(() => undefined), wait);
  }

  private load(): Session | null {
    try {
      const raw = this.storage?.getItem(this.storageKey);
      const session = raw ? (JSON.parse(raw) as Session) : null;
      return session && typeof session.refreshToken === "string" ? session : null;
    } catch {
      return null;
    }
  }

  private save(): void {
    if (this.storage === null) return;
    if (this.current === null) this.storage.removeItem(this.storageKey);
    else this.storage.setItem(this.storageKey, JSON.stringify(this.current));
  }

  private http(): Transport {
    if (this.transport === null) {
      throw new CapebaseError(0, "PasswordAuth is not attached: pass it to createClient(url, { auth })", {
        kind: "usage",
      });
    }
    return this.transport;
  }
}

function readLock(raw: string | null): { owner: string; until: number } | null {
  try {
    const lock = raw ? (JSON.parse(raw) as { owner?: unknown; until?: unknown }) : null;
    return lock && typeof lock.owner === "string" && typeof lock.until === "number" ? { owner: lock.owner, until: lock.until } : null;
  } catch {
    return null;
  }
}

/** Follow another tab's changes of `key` in `storage` (a browser's `storage` event). */
function onStorage(storage: SessionStore | null, key: string, listener: () => void): () => void {
  const target = globalThis as {
    addEventListener?: (type: string, fn: (event: { key: string | null; storageArea?: unknown }) => void) => void;
    removeEventListener?: (type: string, fn: (event: { key: string | null; storageArea?: unknown }) => void) => void;
  };
  if (storage === null || typeof target.addEventListener !== "function") return () => undefined;
  const handler = (event: { key: string | null; storageArea?: unknown }) => {
    if (event.storageArea === storage && (event.key === key || event.key === null)) listener();
  };
  target.addEventListener("storage", handler);
  return () => target.removeEventListener?.("storage", handler);
}

interface TokenPair {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}
