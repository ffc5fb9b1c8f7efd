// The todo demo's API through the types openapi-typescript writes from its OpenAPI document
// (npx openapi-typescript http://127.0.0.1:8000/openapi.json -o capebase-api.ts), with
// openapi-fetch: filters, a group, selected fields, pages by cursor with a total count, one
// row with its ETag, and the change stream's messages. Each query parameter is typed by its
// field: a misspelt filter or a wrong value does not compile.
import createClient from "openapi-fetch";
import type { components, paths } from "../generated/capebase-api.js";

type Todo = components["schemas"]["TodoRead"];
type TodoPage = components["schemas"]["TodoPage"];
type TodoQuery = NonNullable<paths["/todo"]["get"]["parameters"]["query"]>;
type ListHeaders = paths["/todo"]["get"]["responses"][200]["headers"];
type StreamQuery = NonNullable<paths["/todo/subscribe"]["get"]["parameters"]["query"]>;
type StreamMessage = components["schemas"]["TodoStreamMessage"];

const api = createClient<paths>({ baseUrl: "http://127.0.0.1:8000" });

/** Open todos about milk or bought after New Year, 20 a page, with the total. */
const openTodos: TodoQuery = {
  is_complete: false, // ?is_complete=false
  task__icontains: "milk", // ?task__icontains=milk
  or: "(task__startswith=buy,inserted_at__gte=2026-01-01T00:00:00Z)",
  id__gt: 0, // a number, as the key is
  id__nin: "13,14", // in/nin: comma-separated values
  select: "id,task,is_complete",
  order_by: "-inserted_at,id",
  count: true,
  limit: 20,
};

/** The next page's cursor, from `Link: <...?after=cursor...>; rel="next"`. */
function nextCursor(link: string | null): string | undefined {
  const match = link === null ? null : /[?&]after=([^&>]+)[^>]*>;\s*rel="next"/.exec(link);
  return match?.[1] === undefined ? undefined : decodeURIComponent(match[1]);
}

export async function allOpenTodos(): Promise<{ rows: Todo[]; total: number }> {
  const rows: Todo[] = [];
  let total: ListHeaders["X-Total-Count"] = 0;
  let after: string | undefined;
  do {
    const { data, error, response } = await api.GET("/todo", {
      params: { query: { ...openTodos, after } },
    });
    if (error !== undefined) throw new Error(`list failed: ${JSON.stringify(error.detail)}`);
    rows.push(...(Array.isArray(data) ? data : data.items));
    total = Number(response.headers.get("X-Total-Count"));
    after = nextCursor(response.headers.get("Link"));
  } while (after !== undefined);
  return { rows, total };
}

/** The same pages as `{"items": [...], "next": cursor}` bodies. */
export async function enveloped(): Promise<Todo[]> {
  const rows: Todo[] = [];
  let after: string | null = null;
  do {
    const query: TodoQuery = { task__startswith: "buy", envelope: true, after: after ?? undefined };
    const page: Todo[] | TodoPage | undefined = (await api.GET("/todo", { params: { query } })).data;
    if (page === undefined || Array.isArray(page)) break;
    rows.push(...page.items);
    after = page.next;
  } while (after !== null);
  return rows;
}

/** One row and its version; a stored row always has its key. */
export async function oneTodo(id: number): Promise<{ id: number; etag: string | null }> {
  const { data, response } = await api.GET("/todo/{id}", { params: { path: { id } } });
  if (data === undefined) throw new Error(`no todo ${id}`);
  const key: number = data.id;
  return { id: key, etag: response.headers.get("ETag") };
}

/** The stream's URL for open todos; its messages, told apart by `event`. */
export function streamUrl(): string {
  const query: StreamQuery = { is_complete: false, id__gte: 1, select: "id,task" };
  const search = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
  return `http://127.0.0.1:8000/todo/subscribe?${search}`;
}

export function describe(message: StreamMessage): string {
  switch (message.event) {
    case "INSERT":
    case "UPDATE":
      return `${message.event} ${message.payload.id}: ${message.payload.task}`;
    case "DELETE":
      return `DELETE ${message.payload.id}`;
    case "ready":
      return `from ${message.id}`;
    case "reset":
      return `reload, then resume from ${message.resume}`;
    default:
      return message.event;
  }
}
