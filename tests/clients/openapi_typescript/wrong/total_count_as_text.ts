// error: Type 'string' is not assignable to type 'number'
import type { paths } from "../generated/capebase-api.js";

type ListHeaders = paths["/todo"]["get"]["responses"][200]["headers"];
export const total: ListHeaders["X-Total-Count"] = "12";
