// What both stream transports (SSE over fetch, WebSocket) report to a subscription: the
// server's messages, parsed, and how a connection ended.
/** The subscriber's queue overflowed, the token expired, the database went away: the reasons
 * the server ends a stream on purpose, and the delay before resuming. */
export const RESUME_NOW = { action: "reconnect", delay: "now" };
