// @capebase/client: a typed browser and Node client for capebase apps.

export { type AuthEvent, type AuthProvider, PasswordAuth, type PasswordAuthOptions, type Session, type SessionStore, type User, tokenAuth } from "./auth.js";
export { type AnyDatabase, CapebaseClient, type ClientOptions, type DatabaseShape, Table, type TableSubscribeOptions, type TableTypes, type UntypedDatabase, createClient } from "./client.js";
export { CapebaseError, type ErrorKind, type FieldError, isCapebaseError } from "./errors.js";
export { type ApiResponse, type FetchLike, type RequestOptions, Transport } from "./http.js";
export { DEFAULT_LIMIT, LiveQuery, type LiveQueryOptions } from "./live.js";
export { type DatabaseSchema, type FieldKind, type NullOrder, type TableSchema } from "./order.js";
export {
  type ComparisonFilter,
  type FieldFilter,
  type FilterValue,
  type ListQuery,
  type ListResult,
  type OrderBy,
  type OrderTerm,
  type StreamWhere,
  type TextFilter,
  type Where,
  encodeQuery,
} from "./query.js";
export { type Change, type ConnectionState, type ResetInfo, type StreamTransport, type SubscribeOptions, Subscription } from "./subscription.js";
export type { WebSocketConstructor } from "./websocket.js";
