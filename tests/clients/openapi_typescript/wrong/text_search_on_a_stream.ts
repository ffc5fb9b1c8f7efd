// error: 'task__contains' does not exist
import type { paths } from "../generated/capebase-api.js";

export const query: paths["/todo/subscribe"]["get"]["parameters"]["query"] = { task__contains: "x" };
