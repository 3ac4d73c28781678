/**
 * Canonical JSON: one string per value, whatever order its object keys were written in, so that a hash
 * of it (the cache key) does not change when a YAML file is reordered.
 *
 * Rules:
 * - object keys sorted by UTF-16 code units (`Array.prototype.sort`), recursively; no whitespace;
 * - numbers in JS's shortest round-trip form (`String(n)`), so `1`, `0.1`, `1e+21`; `-0` is written `0`;
 * - strings as `JSON.stringify` writes them;
 * - object fields whose value is `undefined` are dropped (as if absent); `undefined` in an array is `null`;
 * - rejected with a `CanonicalJsonError` naming the path: NaN and ±Infinity (a cache key must not depend
 *   on a value that has no JSON form, and encoding them as strings would collide with the strings
 *   "NaN"/"Infinity"), bigints, functions, symbols, cycles, and objects other than plain objects and
 *   arrays (Date, Map, typed arrays...), whose JSON form would be lossy or surprising.
 */
import { Schema } from "effect"

/** A value with no canonical JSON form; `path` is where it was found, e.g. `params.lr`. */
export class CanonicalJsonError extends Schema.TaggedError<CanonicalJsonError>()("CanonicalJsonError", {
  path: Schema.String,
  message: Schema.String
}) {}

const isPlainObject = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

const describe = (value: unknown): string => {
  if (value === null) return "null"
  if (typeof value !== "object") return typeof value
  return (value as object).constructor?.name ?? "object"
}

/** Dotted paths, array indices included: `layers.0.units`. */
export const pathOf = (parent: string, key: string | number): string =>
  parent === "" ? String(key) : `${parent}.${key}`

const fail = (path: string, what: string): never => {
  throw new CanonicalJsonError({
    path: path === "" ? "<root>" : path,
    message: `cannot make canonical JSON of ${what} at ${path === "" ? "the root" : path}: ` +
      "only null, booleans, strings, finite numbers, arrays and plain objects are allowed"
  })
}

const write = (value: unknown, path: string, seen: Set<object>, out: Array<string>): void => {
  switch (typeof value) {
    case "string":
      out.push(JSON.stringify(value))
      return
    case "boolean":
      out.push(value ? "true" : "false")
      return
    case "number":
      if (!Number.isFinite(value)) return fail(path, String(value))
      // String(-0) is "0"; String gives the shortest form that round-trips.
      out.push(String(value))
      return
    case "object": {
      if (value === null) {
        out.push("null")
        return
      }
      if (seen.has(value)) return fail(path, "a cycle")
      if (Array.isArray(value)) {
        seen.add(value)
        out.push("[")
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out.push(",")
          const item = value[i]
          if (item === undefined) out.push("null")
          else write(item, pathOf(path, i), seen, out)
        }
        out.push("]")
        seen.delete(value)
        return
      }
      if (!isPlainObject(value)) return fail(path, `a ${describe(value)}`)
      seen.add(value)
      const record = value as Record<string, unknown>
      const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort()
      out.push("{")
      keys.forEach((key, i) => {
        if (i > 0) out.push(",")
        out.push(JSON.stringify(key), ":")
        write(record[key], pathOf(path, key), seen, out)
      })
      out.push("}")
      seen.delete(value)
      return
    }
    default:
      return fail(path, `a ${typeof value}`)
  }
}

/**
 * The canonical JSON of `value` (see the module comment for the rules).
 * Throws `CanonicalJsonError` for values with no canonical form.
 */
export const canonicalJson = (value: unknown): string => {
  if (value === undefined) return fail("", "undefined")
  const out: Array<string> = []
  write(value, "", new Set(), out)
  return out.join("")
}
