// @capebase/client: a typed browser and Node client for capebase apps.
export { PasswordAuth, tokenAuth } from "./auth.js";
export { CapebaseClient, Table, createClient } from "./client.js";
export { CapebaseError, isCapebaseError } from "./errors.js";
export { Transport } from "./http.js";
export { DEFAULT_LIMIT, LiveQuery } from "./live.js";
export {} from "./order.js";
export { encodeQuery, } from "./query.js";
export { Subscription } from "./subscription.js";
