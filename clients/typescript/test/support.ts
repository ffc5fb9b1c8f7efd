// Test helpers: a fetch and a WebSocket whose stream connections can be blocked (as a network
// outage would), and a recorder of a subscription's changes and states.

import type { Change, ConnectionState, FetchLike, WebSocketConstructor } from "../src/index.js";

/** Streams opened through these fail while `blocked`; `lists` counts list fetches by table. */
export class Network {
  blocked = false;
  readonly lists = new Map<string, number>();

  readonly fetch: FetchLike = async (url, init) => {
    const { pathname, search } = new URL(url);
    if (this.blocked && pathname.endsWith("/subscribe")) throw new TypeError("network blocked by the test");
    const method = init?.method ?? "GET";
    const table = pathname.split("/")[1] ?? "";
    if (method === "GET" && search && pathname === `/${table}`) this.lists.set(table, (this.lists.get(table) ?? 0) + 1);
    return fetch(url, init);
  };

  readonly WebSocket: WebSocketConstructor = ((network: Network) =>
    class extends WebSocket {
      constructor(url: string) {
        // A blocked connection goes to a closed port: it fails like a dropped network.
        super(network.blocked ? url.replace(/\/\/[^/]+/, "//127.0.0.1:9") : url);
      }
    })(this);

  listLoads(table: string): number {
    return this.lists.get(table) ?? 0;
  }
}

/** What a subscription delivered, in order. */
export class Recorder<Row> {
  readonly changes: Change<Row>[] = [];
  readonly states: ConnectionState[] = [];
  readonly handler = (change: Change<Row>): void => {
    this.changes.push(change);
  };
  readonly onState = (state: ConnectionState): void => {
    this.states.push(state);
  };

  ids(): number[] {
    return this.changes.map((change) => change.id);
  }

  /** `[event, key]` pairs: what happened to which row. */
  events(key = "id"): [string, unknown][] {
    return this.changes.map((change) => [change.event, (change.payload as Record<string, unknown>)[key]]);
  }
}
