// error: Type 'number' is not assignable to type 'string'
import type { paths } from "../generated/capebase-api.js";

type RowHeaders = paths["/todo/{id}"]["get"]["responses"][200]["headers"];
export const etag: RowHeaders["ETag"] = 7;
