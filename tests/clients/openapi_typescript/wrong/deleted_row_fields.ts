// error: Property 'task' does not exist
import type { components } from "../generated/capebase-api.js";

export function task(message: components["schemas"]["TodoStreamMessage"]): string {
  return message.event === "DELETE" ? message.payload.task : "";
}
