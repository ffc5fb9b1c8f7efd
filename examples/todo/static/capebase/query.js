// The list grammar of capebase's generated routes, typed, and its encoding as query parameters.
//
// A query is a plain object: { where, orderBy, limit, offset, count }. Each key has one encoder
// in ENCODERS; a future server feature (OR groups, select, expand, cursors) is a new key with a
// new encoder, and until then the key is refused by name (NOT_YET), never silently dropped.
import { CapebaseError } from "./errors.js";
/** Operators every column takes (booleans and enums: eq, ne, in, nin, isnull only). */
export const COMPARISON_OPERATORS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "isnull"];
/** Operators of text columns only. */
export const TEXT_OPERATORS = ["like", "ilike", "contains", "icontains", "startswith"];
/** What a stream's filters may use (the text operators are for lists only). */
export const STREAM_OPERATORS = COMPARISON_OPERATORS;
const ENCODERS = {
    where: (value, out) => out.push(...encodeWhere(value)),
    orderBy: (value, out) => {
        const terms = orderTerms(value);
        if (terms.length > 0)
            out.push(["order_by", terms.join(",")]);
    },
    limit: (value, out) => out.push(["limit", String(wholeNumber("limit", value))]),
    offset: (value, out) => out.push(["offset", String(wholeNumber("offset", value))]),
    count: (value, out) => {
        if (value)
            out.push(["count", "true"]);
    },
};
const NOT_YET = {
    or: "OR groups",
    select: "choosing columns (select)",
    expand: "expanding relations (expand)",
    cursor: "cursor paging",
};
/** The query parameters of `query`, in a stable order (streams' resume tokens depend on it). */
export function encodeQuery(query = {}) {
    const out = [];
    for (const [key, value] of Object.entries(query)) {
        if (value === undefined)
            continue;
        const encode = ENCODERS[key];
        if (encode === undefined) {
            const feature = NOT_YET[key];
            throw usage(feature
                ? `${feature} ('${key}') is not in capebase's list grammar yet`
                : `Unknown query option '${key}'; use ${Object.keys(ENCODERS).join(", ")}`);
        }
        encode(value, out);
    }
    return out;
}
/** `where` as `field=value` / `field__op=value` pairs. */
export function encodeWhere(where = {}) {
    const out = [];
    for (const [field, condition] of Object.entries(where)) {
        if (condition === undefined)
            continue;
        for (const [op, value] of filterEntries(field, condition)) {
            if (op === "isnull")
                out.push([`${field}__isnull`, value ? "true" : "false"]);
            else if (op === "in" || op === "nin")
                out.push([`${field}__${op}`, encodeList(field, op, value)]);
            else
                out.push([op === "eq" ? field : `${field}__${op}`, encodeValue(field, value)]);
        }
    }
    return out;
}
/** Each `(operator, value)` of one field's condition; `null` equality becomes `isnull`. */
export function filterEntries(field, condition) {
    if (!isOperatorObject(condition)) {
        return condition === null ? [["isnull", true]] : [["eq", condition]];
    }
    const entries = [];
    for (const [op, value] of Object.entries(condition)) {
        if (value === undefined)
            continue;
        if (!isOperator(op)) {
            throw usage(`Unknown operator '${op}' on '${field}'; use one of ${[...COMPARISON_OPERATORS, ...TEXT_OPERATORS].join(", ")}`);
        }
        if (value === null && (op === "eq" || op === "ne"))
            entries.push(["isnull", op === "eq"]);
        else
            entries.push([op, value]);
    }
    return entries;
}
/** Split `where` into what a stream can filter (server side) and the rest (text operators). */
export function splitForStream(where = {}) {
    const stream = {};
    const local = {};
    for (const [field, condition] of Object.entries(where)) {
        if (condition === undefined)
            continue;
        for (const [op, value] of filterEntries(field, condition)) {
            const target = STREAM_OPERATORS.includes(op) ? stream : local;
            (target[field] ??= {})[op] = value;
        }
    }
    return { stream, local };
}
/** The terms of `orderBy` as strings ("-inserted_at"). */
export function orderTerms(orderBy) {
    if (orderBy === undefined)
        return [];
    const terms = typeof orderBy === "string" ? orderBy.split(",") : [...orderBy];
    return terms.map((term) => term.trim()).filter((term) => term !== "");
}
/** One value as the server parses it: booleans `true`/`false`, dates in ISO 8601 (UTC). */
export function encodeValue(field, value) {
    if (typeof value === "string")
        return value;
    if (typeof value === "boolean")
        return value ? "true" : "false";
    if (typeof value === "bigint")
        return value.toString();
    if (typeof value === "number") {
        if (!Number.isFinite(value))
            throw usage(`'${field}' cannot be compared with ${value}`);
        return String(value);
    }
    if (value instanceof Date) {
        if (Number.isNaN(value.getTime()))
            throw usage(`'${field}' cannot be compared with an invalid Date`);
        return value.toISOString();
    }
    throw usage(`'${field}' takes a string, number, boolean or Date, not ${value === null ? "null" : typeof value}`);
}
function encodeList(field, op, values) {
    if (!Array.isArray(values) || values.length === 0) {
        throw usage(`'${field}' ${op} takes a non-empty array of values`);
    }
    return values
        .map((value) => {
        const text = encodeValue(field, value);
        // The server splits the list on commas and has no escape for one.
        if (text.includes(","))
            throw usage(`'${field}' ${op}: a value cannot contain a comma (${JSON.stringify(text)})`);
        return text;
    })
        .join(",");
}
function wholeNumber(name, value) {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
        throw usage(`'${name}' takes a whole number >= 0, not ${JSON.stringify(value)}`);
    }
    return value;
}
function isOperator(op) {
    return COMPARISON_OPERATORS.includes(op) || TEXT_OPERATORS.includes(op);
}
function isOperatorObject(value) {
    return typeof value === "object" && value !== null && !(value instanceof Date) && !Array.isArray(value);
}
function usage(message) {
    return new CapebaseError(0, message, { kind: "usage" });
}
