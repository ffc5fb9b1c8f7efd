// error: Type 'null' is not assignable to type 'number'
import type { components } from "../generated/capebase-api.js";

export const todo: components["schemas"]["TodoRead"] = {
  id: null, user_id: "alice", task: "buy milk", is_complete: false, inserted_at: "2026-01-01T00:00:00Z",
};
