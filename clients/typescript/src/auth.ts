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
   * Where the session is kept across page loads (default: memory only). With `localStorage`
   * every tab of the origin shares one sign-in; two tabs refreshing it at once would reuse a
   * refresh token, which the server answers by ending the sign-in, so prefer `sessionStorage`.
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

  constructor(options: PasswordAuthOptions = {}) {
    this.prefix = (options.prefix ?? "/auth").replace(/\/+$/, "");
    this.storage = options.storage ?? null;
    this.storageKey = options.storageKey ?? "capebase-session";
    this.refreshMargin = options.refreshMargin;
    this.retryDelay = options.retryDelay ?? 5_000;
    this.current = this.load();
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
    const session = this.current;
    if (session === null) return null;
    if (Date.now() >= session.refreshAt) {
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
  }

  private async exchange(): Promise<Session> {
    const session = this.current;
    if (session === null) throw new CapebaseError(401, "Not signed in", { kind: "unauthorized" });
    let response;
    try {
      response = await this.http().request<TokenPair>("POST", `${this.prefix}/refresh`, {
        json: { refresh_token: session.refreshToken },
        authenticate: false,
      });
    } catch (error) {
      if (error instanceof CapebaseError && error.status === 401 && this.current === session) {
        this.set(null, "expired");
      } else if (this.current === session) {
        this.timer?.cancel();
        this.timer = startTimer(() => void this.refresh().catch(() => undefined), this.retryDelay);
      }
      throw error;
    }
    if (this.current !== session) throw new CapebaseError(401, "Signed out meanwhile", { kind: "unauthorized" });
    this.set(this.fromTokens(response.body, session.user), "refreshed");
    return this.current as Session;
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

  private set(session: Session | null, event: AuthEvent): void {
    this.current = session;
    this.save();
    this.schedule();
    for (const listener of [...this.listeners]) listener(session, event);
    for (const listener of [...this.tokenListeners]) listener();
  }

  private schedule(): void {
    this.timer?.cancel();
    this.timer = null;
    const session = this.current;
    if (session === null || this.transport === null) return;
    const wait = Math.max(0, session.refreshAt - Date.now());
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

interface TokenPair {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}
