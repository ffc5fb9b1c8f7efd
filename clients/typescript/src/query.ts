// The list grammar of capebase's generated routes, typed, and its encoding as query parameters.
//
// A query is a plain object: { where, orderBy, limit, offset, count }. Each key has one encoder
// in ENCODERS; a future server feature (OR groups, select, expand, cursors) is a new key with a
// new encoder, and until then the key is refused by name (NOT_YET), never silently dropped.

import { CapebaseError } from "./errors.js";
import type { QueryPairs } from "./http.js";

/** Operators every column takes (booleans and enums: eq, ne, in, nin, isnull only). */
export const COMPARISON_OPERATORS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "isnull"] as const;
/** Operators of text columns only. */
export const TEXT_OPERATORS = ["like", "ilike", "contains", "icontains", "startswith"] as const;
/** What a stream's filters may use (the text operators are for lists only). */
export const STREAM_OPERATORS: readonly string[] = COMPARISON_OPERATORS;

export type ComparisonOperator = (typeof COMPARISON_OPERATORS)[number];
export type TextOperator = (typeof TEXT_OPERATORS)[number];
export type Operator = ComparisonOperator | TextOperator;

/** A value a filter compares with: the column's own type; a Date for a date-time text column. */
export type FilterValue<V> = NonNullable<V> | (NonNullable<V> extends string ? Date : never);

/** `{gt: 3}`, `{in: [1, 2]}`, `{isnull: true}`, `{contains: "milk"}` (text columns). */
export type ComparisonFilter<V> = {
  eq?: FilterValue<V> | null;
  ne?: FilterValue<V> | null;
  gt?: FilterValue<V>;
  gte?: FilterValue<V>;
  lt?: FilterValue<V>;
  lte?: FilterValue<V>;
  in?: readonly FilterValue<V>[];
  nin?: readonly FilterValue<V>[];
  isnull?: boolean;
};
export type TextFilter = { [K in TextOperator]?: string };
export type FieldFilter<V> = ComparisonFilter<V> & (NonNullable<V> extends string ? TextFilter : unknown);

/** Conditions on fields, AND-ed: `{is_complete: false, task: {contains: "milk"}}`. A bare value
 * means equality; `null` means `isnull`. */
export type Where<Row> = { [K in keyof Row & string]?: FilterValue<Row[K]> | null | FieldFilter<Row[K]> };

/** What a stream may filter on: the comparison operators only. */
export type StreamWhere<Row> = {
  [K in keyof Row & string]?: FilterValue<Row[K]> | null | ComparisonFilter<Row[K]>;
};

/** A sort key: "field" ascending, "-field" descending. */
export type OrderTerm<Row> = (keyof Row & string) | `-${keyof Row & string}`;
export type OrderBy<Row> = OrderTerm<Row> | readonly OrderTerm<Row>[];

/** `GET /{table}`'s query, as the server understands it today. */
export interface ListQuery<Row> {
  where?: Where<Row>;
  /** Ties and the default order use the primary key, ascending. */
  orderBy?: OrderBy<Row>;
  /** Page size: the server's default (100) when omitted, at most its maximum (1000). */
  limit?: number;
  offset?: number;
  /** Also return the number of matching rows (`X-Total-Count`). */
  count?: boolean;
}

/** The answer of a list with `count: true`. */
export interface ListResult<Row> {
  rows: Row[];
  /** Every matching row the caller may read, regardless of limit and offset. */
  total: number;
}

type Encoder = (value: unknown, out: [string, string][]) => void;

const ENCODERS: Record<string, Encoder> = {
  where: (value, out) => out.push(...encodeWhere(value as Where<Record<string, unknown>>)),
  orderBy: (value, out) => {
    const terms = orderTerms(value as OrderBy<Record<string, unknown>>);
    if (terms.length > 0) out.push(["order_by", terms.join(",")]);
  },
  limit: (value, out) => out.push(["limit", String(wholeNumber("limit", value))]),
  offset: (value, out) => out.push(["offset", String(wholeNumber("offset", value))]),
  count: (value, out) => {
    if (value) out.push(["count", "true"]);
  },
};

const NOT_YET: Record<string, string> = {
  or: "OR groups",
  select: "choosing columns (select)",
  expand: "expanding relations (expand)",
  cursor: "cursor paging",
};

/** The query parameters of `query`, in a stable order (streams' resume tokens depend on it). */
export function encodeQuery(query: object = {}): QueryPairs {
  const out: [string, string][] = [];
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    const encode = ENCODERS[key];
    if (encode === undefined) {
      const feature = NOT_YET[key];
      throw usage(
        feature
          ? `${feature} ('${key}') is not in capebase's list grammar yet`
          : `Unknown query option '${key}'; use ${Object.keys(ENCODERS).join(", ")}`,
      );
    }
    encode(value, out);
  }
  return out;
}

/** `where` as `field=value` / `field__op=value` pairs. */
export function encodeWhere(where: Where<Record<string, unknown>> = {}): [string, string][] {
  const out: [string, string][] = [];
  for (const [field, condition] of Object.entries(where)) {
    if (condition === undefined) continue;
    for (const [op, value] of filterEntries(field, condition)) {
      if (op === "isnull") out.push([`${field}__isnull`, value ? "true" : "false"]);
      else if (op === "in" || op === "nin") out.push([`${field}__${op}`, encodeList(field, op, value)]);
      else out.push([op === "eq" ? field : `${field}__${op}`, encodeValue(field, value)]);
    }
  }
  return out;
}

/** Each `(operator, value)` of one field's condition; `null` equality becomes `isnull`. */
export function filterEntries(field: string, condition: unknown): [Operator, unknown][] {
  if (!isOperatorObject(condition)) {
    return condition === null ? [["isnull", true]] : [["eq", condition]];
  }
  const entries: [Operator, unknown][] = [];
  for (const [op, value] of Object.entries(condition)) {
    if (value === undefined) continue;
    if (!isOperator(op)) {
      throw usage(`Unknown operator '${op}' on '${field}'; use one of ${[...COMPARISON_OPERATORS, ...TEXT_OPERATORS].join(", ")}`);
    }
    if (value === null && (op === "eq" || op === "ne")) entries.push(["isnull", op === "eq"]);
    else entries.push([op, value]);
  }
  return entries;
}

/** Split `where` into what a stream can filter (server side) and the rest (text operators). */
export function splitForStream(where: Where<Record<string, unknown>> = {}): {
  stream: Record<string, Record<string, unknown>>;
  local: Record<string, Record<string, unknown>>;
} {
  const stream: Record<string, Record<string, unknown>> = {};
  const local: Record<string, Record<string, unknown>> = {};
  for (const [field, condition] of Object.entries(where)) {
    if (condition === undefined) continue;
    for (const [op, value] of filterEntries(field, condition)) {
      const target = STREAM_OPERATORS.includes(op) ? stream : local;
      (target[field] ??= {})[op] = value;
    }
  }
  return { stream, local };
}

/** The terms of `orderBy` as strings ("-inserted_at"). */
export function orderTerms(orderBy: OrderBy<Record<string, unknown>> | undefined): string[] {
  if (orderBy === undefined) return [];
  const terms = typeof orderBy === "string" ? orderBy.split(",") : [...orderBy];
  return terms.map((term) => term.trim()).filter((term) => term !== "");
}

/** One value as the server parses it: booleans `true`/`false`, dates in ISO 8601 (UTC). */
export function encodeValue(field: string, value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw usage(`'${field}' cannot be compared with ${value}`);
    return String(value);
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw usage(`'${field}' cannot be compared with an invalid Date`);
    return value.toISOString();
  }
  throw usage(`'${field}' takes a string, number, boolean or Date, not ${value === null ? "null" : typeof value}`);
}

function encodeList(field: string, op: string, values: unknown): string {
  if (!Array.isArray(values) || values.length === 0) {
    throw usage(`'${field}' ${op} takes a non-empty array of values`);
  }
  return values
    .map((value) => {
      const text = encodeValue(field, value);
      // The server splits the list on commas and has no escape for one.
      if (text.includes(",")) throw usage(`'${field}' ${op}: a value cannot contain a comma (${JSON.stringify(text)})`);
      return text;
    })
    .join(",");
}

function wholeNumber(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
    throw usage(`'${name}' takes a whole number >= 0, not ${JSON.stringify(value)}`);
  }
  return value;
}

function isOperator(op: string): op is Operator {
  return (COMPARISON_OPERATORS as readonly string[]).includes(op) || (TEXT_OPERATORS as readonly string[]).includes(op);
}

function isOperatorObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !(value instanceof Date) && !Array.isArray(value);
}

function usage(message: string): CapebaseError {
  return new CapebaseError(0, message, { kind: "usage" });
}
