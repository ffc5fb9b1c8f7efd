// Ordering and matching rows in the client the way the server does, so that a live query can
// place a changed row without asking: values compare by their column's kind (datetimes as
// instants to the microsecond, decimals exactly, text by code point), ties by primary key.

import { CapebaseError } from "./errors.js";
import { type Operator, filterEntries, orderTerms } from "./query.js";

/** What a column holds, as far as ordering and filtering go (`capebase-types` writes these). */
export type FieldKind =
  | "integer"
  | "number"
  | "decimal"
  | "boolean"
  | "string"
  | "datetime"
  | "date"
  | "time"
  | "duration"
  | "uuid"
  | "enum"
  | "json";

/** A published table as the client needs to know it at run time. */
export interface TableSchema {
  primaryKey: string;
  fields: Readonly<Record<string, FieldKind>>;
  /** Each enum field's values in declaration order. */
  enums?: Readonly<Record<string, readonly string[]>>;
}

export type DatabaseSchema = Readonly<Record<string, TableSchema>>;

/**
 * Where NULL goes in an order: "largest" (last ascending, first descending), as capebase sorts
 * it on every database, or "smallest", as SQLite and MariaDB put it before capebase did.
 */
export type NullOrder = "smallest" | "largest";

type Row = Record<string, unknown>;

/** The comparator of `orderBy` (then the primary key), as the server sorts a list. */
export function rowComparator(
  orderBy: string | readonly string[] | undefined,
  schema: TableSchema,
  nulls: NullOrder = "largest",
): (a: Row, b: Row) => number {
  const keys: { field: string; sign: number }[] = [];
  for (const term of orderTerms(orderBy)) {
    const descending = term.startsWith("-");
    const field = term.replace(/^[-+]/, "");
    if (schema.fields[field] === "json") throw usage(`Cannot sort on '${field}': JSON values have no order`);
    keys.push({ field, sign: descending ? -1 : 1 });
  }
  if (!keys.some((key) => key.field === schema.primaryKey)) keys.push({ field: schema.primaryKey, sign: 1 });
  const nullSign = nulls === "smallest" ? -1 : 1;
  return (a, b) => {
    for (const { field, sign } of keys) {
      const left = a[field];
      const right = b[field];
      let result: number;
      if (left === null || left === undefined || right === null || right === undefined) {
        const leftNull = left === null || left === undefined;
        const rightNull = right === null || right === undefined;
        result = leftNull === rightNull ? 0 : leftNull ? nullSign : -nullSign;
      } else {
        result = compareValues(kindOf(schema, field, left), left, right, schema.enums?.[field]);
      }
      if (result !== 0) return result * sign;
    }
    return 0;
  };
}

/**
 * Whether `row` satisfies every condition of `where` (used for what streams cannot filter), or
 * null when only the database can tell: `ilike`/`icontains` on text with a cased letter beyond
 * ASCII, which each database folds its own way.
 */
export function matchesWhere(row: Row, where: Record<string, unknown>, schema: TableSchema): boolean | null {
  let known = true;
  for (const [field, condition] of Object.entries(where)) {
    if (condition === undefined) continue;
    for (const [op, expected] of filterEntries(field, condition)) {
      const result = matches(op, row[field], expected, kindOf(schema, field, row[field]), schema.enums?.[field]);
      if (result === false) return false;
      if (result === null) known = false;
    }
  }
  return known ? true : null;
}

function matches(op: Operator, value: unknown, expected: unknown, kind: FieldKind, enums?: readonly string[]): boolean | null {
  if (op === "isnull") return (value === null || value === undefined) === Boolean(expected);
  if (value === null || value === undefined) return op === "ne" || op === "nin";
  const compare = (other: unknown) => compareValues(kind, value, normalize(other), enums);
  switch (op) {
    case "eq":
      return compare(expected) === 0;
    case "ne":
      return compare(expected) !== 0;
    case "gt":
      return compare(expected) > 0;
    case "gte":
      return compare(expected) >= 0;
    case "lt":
      return compare(expected) < 0;
    case "lte":
      return compare(expected) <= 0;
    case "in":
      return (expected as unknown[]).some((item) => compare(item) === 0);
    case "nin":
      return !(expected as unknown[]).some((item) => compare(item) === 0);
    case "contains":
      return String(value).includes(String(expected));
    case "icontains":
      if (!foldsAlike(String(value)) || !foldsAlike(String(expected))) return null;
      return asciiLower(String(value)).includes(asciiLower(String(expected)));
    case "startswith":
      return String(value).startsWith(String(expected));
    case "like":
      return likePattern(String(expected), false).test(String(value));
    case "ilike":
      if (!foldsAlike(String(value)) || !foldsAlike(String(expected))) return null;
      return likePattern(asciiLower(String(expected)), false).test(asciiLower(String(value)));
  }
}

/** Whether every database folds `text`'s case alike: its only cased letters are ASCII. */
export function foldsAlike(text: string): boolean {
  for (const char of text) {
    if (char.charCodeAt(0) < 0x80) continue;
    if (char.toLowerCase() !== char || char.toUpperCase() !== char) return false;
  }
  return true;
}

/** `text` with A-Z lowered, and nothing else: the folding every database shares. */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]/g, (letter) => String.fromCharCode(letter.charCodeAt(0) + 32));
}

function normalize(value: unknown): unknown {
  return value instanceof Date ? value.toISOString() : value;
}

/** An SQL LIKE pattern (`%`, `_`, backslash escapes) as a regular expression. */
export function likePattern(pattern: string, ignoreCase: boolean): RegExp {
  let source = "";
  const chars = [...pattern];
  for (let i = 0; i < chars.length; i += 1) {
    const char = chars[i] as string;
    if (char === "\\" && i + 1 < chars.length) {
      i += 1;
      source += escapeRegExp(chars[i] as string);
    } else if (char === "%") source += "[\\s\\S]*";
    else if (char === "_") source += "[\\s\\S]";
    else source += escapeRegExp(char);
  }
  return new RegExp(`^${source}$`, ignoreCase ? "iu" : "u");
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** Compare two non-null values of one column. */
export function compareValues(kind: FieldKind, a: unknown, b: unknown, enums?: readonly string[]): number {
  switch (kind) {
    case "integer":
    case "number":
      return compareNumbers(a, b);
    case "decimal":
      return compareDecimals(String(a), String(b));
    case "boolean":
      return Number(Boolean(a)) - Number(Boolean(b));
    case "datetime":
      return Math.sign(instant(String(a)) - instant(String(b)));
    case "duration":
      return Math.sign(durationMicros(String(a)) - durationMicros(String(b)));
    case "enum":
      if (enums) return Math.sign(enums.indexOf(String(a)) - enums.indexOf(String(b)));
      return compareCodePoints(String(a), String(b));
    default:
      return compareCodePoints(String(a), String(b));
  }
}

/** Two numbers, exactly when either is a BigInt (an integer past 2^53) or an integer. */
export function compareNumbers(a: unknown, b: unknown): number {
  if (typeof a === "bigint" || typeof b === "bigint") {
    const x = toBigInt(a);
    const y = toBigInt(b);
    if (x !== null && y !== null) return x === y ? 0 : x < y ? -1 : 1;
  }
  return Math.sign(Number(a) - Number(b));
}

function toBigInt(value: unknown): bigint | null {
  if (typeof value === "bigint") return value;
  if (typeof value === "number") return Number.isInteger(value) ? BigInt(value) : null;
  if (typeof value === "string" && /^\s*-?\d+\s*$/.test(value)) return BigInt(value.trim());
  return null;
}

/** The kind of `field`: from the schema, else guessed from a value. */
function kindOf(schema: TableSchema, field: string, value: unknown): FieldKind {
  const known = schema.fields[field];
  if (known !== undefined) return known;
  if (typeof value === "number" || typeof value === "bigint") return "number";
  if (typeof value === "boolean") return "boolean";
  if (typeof value === "string" && DATETIME.test(value)) return "datetime";
  return "string";
}

/** Text in code point order, as the server sorts it on every database (not UTF-16 units). */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const left = a[Symbol.iterator]();
  const right = b[Symbol.iterator]();
  for (;;) {
    const x = left.next();
    const y = right.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const difference = (x.value.codePointAt(0) as number) - (y.value.codePointAt(0) as number);
    if (difference !== 0) return Math.sign(difference);
  }
}

const DATETIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/** Microseconds since 1970 of an RFC 3339 datetime (no offset: UTC). */
export function instant(text: string): number {
  const match = DATETIME.exec(text);
  if (match === null) return Number.NaN;
  const [, y, mo, d, h, mi, s, fraction, offset] = match;
  const milliseconds = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s ?? 0));
  let micros = milliseconds * 1000 + Number(((fraction ?? "") + "000000").slice(0, 6));
  if (offset && offset.toUpperCase() !== "Z") {
    const sign = offset.startsWith("-") ? -1 : 1;
    const digits = offset.slice(1).replace(":", "");
    const minutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || 0);
    micros -= sign * minutes * 60_000_000;
  }
  return micros;
}

const DURATION = /^([+-])?P(?:(\d+)Y)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d{1,6}))?S)?)?$/;

/** Microseconds of an ISO 8601 duration as capebase writes one (a year is 365 days). */
export function durationMicros(text: string): number {
  const match = DURATION.exec(text);
  if (match === null) return Number.NaN;
  const [, sign, years, weeks, days, hours, minutes, seconds, fraction] = match;
  const totalDays = Number(years ?? 0) * 365 + Number(weeks ?? 0) * 7 + Number(days ?? 0);
  const totalSeconds = ((totalDays * 24 + Number(hours ?? 0)) * 60 + Number(minutes ?? 0)) * 60 + Number(seconds ?? 0);
  const micros = totalSeconds * 1_000_000 + Number(((fraction ?? "") + "000000").slice(0, 6));
  return sign === "-" ? -micros : micros;
}

/** Compare two decimal numbers written as text ("12.50", "-3", "1E+2") exactly. */
export function compareDecimals(a: string, b: string): number {
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  if (x.zero || y.zero) return x.zero && y.zero ? 0 : x.zero ? -y.sign : x.sign;
  if (x.sign !== y.sign) return x.sign;
  const magnitude = x.exponent !== y.exponent ? Math.sign(x.exponent - y.exponent) : compareDigits(x.digits, y.digits);
  return magnitude * x.sign;
}

function compareDigits(a: string, b: string): number {
  const width = Math.max(a.length, b.length);
  const left = a.padEnd(width, "0");
  const right = b.padEnd(width, "0");
  return left === right ? 0 : left < right ? -1 : 1;
}

/** sign, significant digits without leading zeros, and the power of ten of the first one. */
function parseDecimal(text: string): { sign: number; digits: string; exponent: number; zero: boolean } {
  const match = /^\s*([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/.exec(text);
  if (match === null) return { sign: 1, digits: "", exponent: 0, zero: true };
  const [, sign, whole = "", fraction = "", exponent = "0"] = match;
  const all = whole + fraction;
  const leading = all.length - all.replace(/^0+/, "").length;
  const digits = all.slice(leading).replace(/0+$/, "");
  if (digits === "") return { sign: 1, digits: "", exponent: 0, zero: true };
  return { sign: sign === "-" ? -1 : 1, digits, exponent: whole.length - leading + Number(exponent), zero: false };
}

function usage(message: string): CapebaseError {
  return new CapebaseError(0, message, { kind: "usage" });
}
