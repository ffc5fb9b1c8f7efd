// error: Type 'string' is not assignable to type 'number'
import type { paths } from "../generated/capebase-api.js";

export const query: paths["/todo"]["get"]["parameters"]["query"] = { id__gt: "ten" };
