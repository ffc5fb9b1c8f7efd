// JSON with integers beyond 2^53: the server writes a BigInteger as a JSON number, which
// JSON.parse rounds to the nearest double (2^53 + 1 reads as 2^53, so two keys become one).
// parseJson keeps every integer that a double cannot hold exactly as a BigInt, and
// stringifyJson writes a BigInt as a JSON number.
import { CapebaseError } from "./errors.js";
/**
 * `JSON.parse(text)`, except that an integer outside Number's safe range (±(2^53 - 1)) becomes
 * a BigInt instead of a rounded number. Throws SyntaxError on text that is not JSON.
 */
export function parseJson(text) {
    // Only an integer of 16 or more digits can be unsafe: the common case stays native.
    if (!/\d{16}/.test(text))
        return JSON.parse(text);
    return new BigIntParser(text).document();
}
/** `JSON.stringify(value)`, writing a BigInt as a JSON number (JSON.stringify throws on one). */
export function stringifyJson(value) {
    for (;;) {
        const marker = `bigint-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}:`;
        let count = 0;
        const text = JSON.stringify(value, (_key, item) => {
            if (typeof item !== "bigint")
                return item;
            count += 1;
            return `${marker}${item.toString()}`;
        });
        if (text === undefined)
            throw usage(`Cannot send ${typeof value} as JSON`);
        if (count === 0)
            return text;
        const pattern = new RegExp(`"${marker}(-?\\d+)"`, "g");
        // A random marker the value itself contains: try another (vanishingly rare).
        if (text.split(marker).length - 1 !== count)
            continue;
        return text.replace(pattern, "$1");
    }
}
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const WHITESPACE = /[ \t\n\r]*/y;
/** A JSON parser (RFC 8259) for the rare text with long digit runs; strings go to JSON.parse. */
class BigIntParser {
    text;
    at = 0;
    constructor(text) {
        this.text = text;
    }
    document() {
        const value = this.value();
        this.space();
        if (this.at !== this.text.length)
            this.fail();
        return value;
    }
    value() {
        this.space();
        const char = this.text[this.at];
        if (char === "{")
            return this.object();
        if (char === "[")
            return this.array();
        if (char === '"')
            return this.string();
        if (char === "-" || (char !== undefined && char >= "0" && char <= "9"))
            return this.number();
        for (const [word, value] of [["true", true], ["false", false], ["null", null]]) {
            if (this.text.startsWith(word, this.at)) {
                this.at += word.length;
                return value;
            }
        }
        return this.fail();
    }
    object() {
        const result = {};
        this.at += 1;
        this.space();
        if (this.text[this.at] === "}") {
            this.at += 1;
            return result;
        }
        for (;;) {
            this.space();
            if (this.text[this.at] !== '"')
                this.fail();
            const key = this.string();
            this.space();
            if (this.text[this.at] !== ":")
                this.fail();
            this.at += 1;
            // As JSON.parse does: "__proto__" is an own property, not the prototype.
            Object.defineProperty(result, key, { value: this.value(), enumerable: true, writable: true, configurable: true });
            this.space();
            const next = this.text[this.at++];
            if (next === "}")
                return result;
            if (next !== ",")
                this.fail();
        }
    }
    array() {
        const result = [];
        this.at += 1;
        this.space();
        if (this.text[this.at] === "]") {
            this.at += 1;
            return result;
        }
        for (;;) {
            result.push(this.value());
            this.space();
            const next = this.text[this.at++];
            if (next === "]")
                return result;
            if (next !== ",")
                this.fail();
        }
    }
    string() {
        let end = this.at + 1;
        for (;;) {
            const char = this.text[end];
            if (char === undefined)
                this.fail();
            if (char === "\\")
                end += 2;
            else if (char === '"')
                break;
            else
                end += 1;
        }
        const literal = this.text.slice(this.at, end + 1);
        this.at = end + 1;
        return JSON.parse(literal);
    }
    number() {
        NUMBER.lastIndex = this.at;
        const match = NUMBER.exec(this.text);
        if (match === null)
            return this.fail();
        this.at += match[0].length;
        const value = Number(match[0]);
        const integer = match[1] === undefined && match[2] === undefined;
        return integer && !Number.isSafeInteger(value) ? BigInt(match[0]) : value;
    }
    space() {
        WHITESPACE.lastIndex = this.at;
        WHITESPACE.exec(this.text);
        this.at = WHITESPACE.lastIndex;
    }
    fail() {
        throw new SyntaxError(`Unexpected token in JSON at position ${this.at}`);
    }
}
function usage(message) {
    return new CapebaseError(0, message, { kind: "usage" });
}
