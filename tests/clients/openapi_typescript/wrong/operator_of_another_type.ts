// error: 'is_complete__gt' does not exist
import type { paths } from "../generated/capebase-api.js";

export const query: paths["/todo"]["get"]["parameters"]["query"] = { is_complete__gt: true };
