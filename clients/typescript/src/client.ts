// The client: typed CRUD for each published table, change streams, live queries, and the auth
// that every request and stream carries.

import { type AuthProvider, PasswordAuth } from "./auth.js";
import { CapebaseError } from "./errors.js";
import { type FetchLike, type RequestOptions, Transport } from "./http.js";
import { type LivePage, LiveQuery, type LiveQueryOptions } from "./live.js";
import type { DatabaseSchema, TableSchema } from "./order.js";
import { type ListQuery, type ListResult, type StreamWhere, encodeQuery, encodeWhere, splitForStream } from "./query.js";
import { type Change, type StreamContext, type StreamTransport, type SubscribeOptions, Subscription } from "./subscription.js";
import type { WebSocketConstructor } from "./websocket.js";

/** The types of one published table (`capebase-types` writes them for every table). */
export interface TableTypes {
  /** A row as the server returns it. */
  Row: object;
  /** The body of `POST /{table}`. */
  Create: object;
  /** The body of `PATCH /{table}/{key}`. */
  Update: object;
  /** The primary key's type (`number | bigint` for a BigInteger key). */
  Key: string | number | bigint;
}

/** Any set of tables, by name. */
export type AnyDatabase = { [table: string]: TableTypes };

/** What a database type must be: each of its tables' types (an interface qualifies too). */
export type DatabaseShape<DB> = { [K in keyof DB]: TableTypes };

/** What a client without generated types knows: any table, rows of unknown fields. */
export type UntypedDatabase = {
  [table: string]: {
    Row: Record<string, unknown>;
    Create: Record<string, unknown>;
    Update: Record<string, unknown>;
    Key: string | number | bigint;
  };
};

export interface ClientOptions<A extends AuthProvider = AuthProvider> {
  /** Who the client acts as (default: a PasswordAuth for the built-in auth, signed out). */
  auth?: A;
  /** The tables' keys and field kinds (`schema` from `capebase-types`); live queries use them
   * to order rows as the server does. Without it keys are "id" and kinds are guessed. */
  schema?: DatabaseSchema;
  fetch?: FetchLike;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
  /** The streams' default transport: "sse" (default) or "websocket". */
  transport?: StreamTransport;
  /** The WebSocket constructor (default: the global one, if any). */
  WebSocket?: WebSocketConstructor;
  /** Reconnect delays of streams, in ms (default 250 doubling up to 5000, with jitter). */
  retry?: { initialDelay?: number; maxDelay?: number };
}

/** Options of `subscribe`: the filters (comparison operators only) and how to follow. */
export interface TableSubscribeOptions<Row> extends SubscribeOptions {
  filters?: StreamWhere<Row>;
}

/**
 * A capebase app's client. `createClient<Database>(url, {schema})` with the generated types.
 *
 * ```ts
 * const cape = createClient<Database>("http://127.0.0.1:8000", { schema });
 * await cape.auth.signIn("alice", "alice-password");
 * const todo = await cape.from("todo").create({ task: "buy milk" });
 * ```
 */
export function createClient<DB extends DatabaseShape<DB> = UntypedDatabase>(
  url: string,
  options?: ClientOptions<PasswordAuth>,
): CapebaseClient<DB, PasswordAuth>;
export function createClient<DB extends DatabaseShape<DB> = UntypedDatabase>(
  url: string,
  options: ClientOptions<AuthProvider> & { auth: AuthProvider },
): CapebaseClient<DB, AuthProvider>;
export function createClient<DB extends DatabaseShape<DB> = UntypedDatabase>(
  url: string,
  options: ClientOptions<AuthProvider> = {},
): CapebaseClient<DB, AuthProvider> {
  return new CapebaseClient<DB, AuthProvider>(url, options);
}

export class CapebaseClient<DB extends DatabaseShape<DB> = UntypedDatabase, A extends AuthProvider = PasswordAuth> {
  /** The auth: with the default PasswordAuth, `signIn`, `signUp`, `signOut`, `user`... */
  readonly auth: A;
  readonly transport: Transport;
  private readonly schema: DatabaseSchema;
  private readonly streams: StreamContext;
  private readonly open = new Set<{ close(): void }>();

  constructor(url: string, options: ClientOptions<A> = {}) {
    this.transport = new Transport(url, options.fetch, options.headers);
    this.auth = options.auth ?? (new PasswordAuth() as unknown as A);
    this.transport.auth = this.auth;
    this.auth.attach?.(this.transport);
    this.schema = options.schema ?? {};
    const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
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
  from<T extends keyof DB & string>(name: T): Table<DB[T]> {
    const untyped = this as unknown as CapebaseClient<UntypedDatabase, AuthProvider>;
    return new Table<DB[T]>(untyped, name, this.streams, this.tableSchema(name));
  }

  /** Follow `table`'s changes: `handler` gets each one you may see, in commit order. */
  subscribe<T extends keyof DB & string>(
    table: T,
    options: TableSubscribeOptions<DB[T]["Row"]>,
    handler: (change: Change<DB[T]["Row"]>) => void,
  ): Subscription<DB[T]["Row"]> {
    return this.from(table).subscribe(options, handler);
  }

  /** A live query of `table`: its `rows` follow every change. */
  live<T extends keyof DB & string>(table: T, query: LiveQueryOptions<DB[T]["Row"]> = {}): LiveQuery<DB[T]["Row"]> {
    return this.from(table).live(query);
  }

  /**
   * Call one of your own routes, with the client's auth and errors: resolves to the JSON body,
   * throws CapebaseError for any non-2xx answer.
   */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    return (await this.transport.request<T>(method, path, options)).body;
  }

  /** Close every stream and live query and stop the auth's timers. */
  close(): void {
    for (const stream of [...this.open]) stream.close();
    this.auth.close?.();
  }

  private tableSchema(name: string): TableSchema {
    return this.schema[name] ?? { primaryKey: "id", fields: {} };
  }
}

function isDotSegment(key: unknown): boolean {
  return key === "." || key === "..";
}

/** One published table's routes. */
export class Table<T extends TableTypes> {
  constructor(
    private readonly client: CapebaseClient<UntypedDatabase, AuthProvider>,
    /** The table's name, as in its URL. */
    readonly name: string,
    private readonly streams: StreamContext,
    /** Its key and field kinds (from the client's `schema`). */
    readonly schema: TableSchema,
  ) {}

  /** `GET /{table}`: the rows you may read that match `query`. With `count: true`, also
   * their total (`{rows, total}`). */
  list(query?: ListQuery<T["Row"]> & { count?: false }): Promise<T["Row"][]>;
  list(query: ListQuery<T["Row"]> & { count: true }): Promise<ListResult<T["Row"]>>;
  async list(query: ListQuery<T["Row"]> = {}): Promise<T["Row"][] | ListResult<T["Row"]>> {
    const response = await this.client.transport.request<T["Row"][]>("GET", this.path(), { query: encodeQuery(query) });
    if (!query.count) return response.body;
    const header = response.headers.get("x-total-count");
    return { rows: response.body, total: header === null ? response.body.length : Number(header) };
  }

  /** `GET /{table}/{key}`; a row you may not read is a 404, like a missing one. The keys "."
   * and ".." cannot be in a URL's path (see `path`): those are read by a filtered list. */
  async get(key: T["Key"]): Promise<T["Row"]> {
    if (isDotSegment(key)) {
      const where = { [this.schema.primaryKey]: key } as ListQuery<T["Row"]>["where"];
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
    return this.client.request<T["Row"]>("GET", this.path(key));
  }

  /** `POST /{table}`: the stored row (auth fields and defaults filled in). */
  async create(values: T["Create"]): Promise<T["Row"]> {
    return this.client.request<T["Row"]>("POST", this.path(), { json: values });
  }

  /** `PATCH /{table}/{key}`: only the fields sent change. */
  async update(key: T["Key"], values: T["Update"]): Promise<T["Row"]> {
    return this.client.request<T["Row"]>("PATCH", this.path(key), { json: values });
  }

  /** `DELETE /{table}/{key}`. */
  async delete(key: T["Key"]): Promise<void> {
    await this.client.request("DELETE", this.path(key));
  }

  /** Follow this table's changes (see `CapebaseClient.subscribe`). */
  subscribe(options: TableSubscribeOptions<T["Row"]>, handler: (change: Change<T["Row"]>) => void): Subscription<T["Row"]> {
    const { filters, ...rest } = options;
    const { local } = splitForStream(filters as Record<string, unknown> | undefined);
    const text = Object.keys(local);
    if (text.length > 0) {
      throw new CapebaseError(0, `Streams filter with comparison operators only; not on ${text.join(", ")} (a live query can)`, {
        kind: "usage",
      });
    }
    return new Subscription<T["Row"]>(this.streams, this.name, encodeWhere(filters as Record<string, unknown>), handler, rest);
  }

  /** A live query of this table (see `LiveQuery`). */
  live(query: LiveQueryOptions<T["Row"]> = {}): LiveQuery<T["Row"]> {
    const fetchPage = async (page: ListQuery<Record<string, unknown>>): Promise<LivePage<Record<string, unknown>>> => {
      const response = await this.client.transport.request<Record<string, unknown>[]>("GET", this.path(), { query: encodeQuery(page) });
      const header = response.headers.get("x-total-count");
      return { rows: response.body, total: header === null ? null : Number(header) };
    };
    return new LiveQuery<T["Row"]>(this.streams, this.name, this.schema, fetchPage, query as LiveQueryOptions<Record<string, unknown>>);
  }

  /**
   * `/{table}` or `/{table}/{key}`. A URL parser resolves the path segments "." and ".."
   * (and their escapes, `%2E`) before the request is sent, so `/doc/..` would be `/`: such
   * keys are refused rather than sent to another route.
   */
  private path(key?: string | number | bigint): string {
    const base = `/${encodeURIComponent(this.name)}`;
    if (key === undefined) return base;
    if (isDotSegment(key)) {
      throw new CapebaseError(0, `The key ${JSON.stringify(key)} cannot be sent in a URL path (it is resolved as a dot segment); only get() reads such a row`, {
        kind: "usage",
      });
    }
    return `${base}/${encodeURIComponent(String(key))}`;
  }
}
