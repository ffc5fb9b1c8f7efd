// error: 'tsk__startswith' does not exist
import type { paths } from "../generated/capebase-api.js";

export const query: paths["/todo"]["get"]["parameters"]["query"] = { tsk__startswith: "buy" };
