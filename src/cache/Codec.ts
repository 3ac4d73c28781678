/**
 * The byte form of a cached artifact: JSON-like values whose bulk data lives in typed arrays anywhere
 * in the tree. The typed arrays are written as raw bytes after a small JSON part, so 100 MB of floats
 * costs one memcpy to encode and, where alignment allows, no copy at all to decode.
 *
 * Layout (all integers little-endian):
 * ```
 *   0  "DSTA"            magic
 *   4  u8  version (1)
 *   5  u8  flags         bit 0: array bytes are little-endian
 *   6  u16 reserved (0)
 *   8  u32 n             byte length of the JSON part
 *  12  u32 reserved (0)
 *  16  JSON part (UTF-8), n bytes: {"v": <tree>, "a": [[type, offset, length], ...]}
 *      then zero padding to a multiple of 8
 *      then each array's raw bytes at its `offset` (from the start, a multiple of 8)
 * ```
 * In the tree, a typed array is `{"$ta": i}` (index into `a`), and NaN, Infinity, -Infinity and -0 are
 * `{"$num": "NaN" | "Infinity" | "-Infinity" | "-0"}`. An object key of the value itself that starts
 * with `$` is written with one more `$`, so it can never be taken for one of these tags.
 *
 * Round trip: equal values, with typed arrays of the same class and contents. One typed array referenced
 * twice decodes to one array referenced twice. Object fields that are `undefined` are dropped (as in
 * JSON); `undefined` inside an array becomes `null`. Decoded arrays may be views on the input bytes:
 * copy them before mutating if the bytes are shared. bigints, functions, symbols, cycles and objects
 * other than arrays, plain objects and typed arrays throw a `CodecError`.
 */
import { Schema } from "effect"

/** Bytes that are not an encoded artifact, or a value that cannot be encoded. */
export class CodecError extends Schema.TaggedError<CodecError>()("CodecError", {
  message: Schema.String
}) {}

type TypedArray =
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array

type TypedArrayConstructor = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray
  new (length: number): TypedArray
  readonly BYTES_PER_ELEMENT: number
}

/** Codes written in the file: append only, never renumber. */
const arrayTypes: ReadonlyArray<readonly [string, TypedArrayConstructor]> = [
  ["Float32Array", Float32Array],
  ["Float64Array", Float64Array],
  ["Int32Array", Int32Array],
  ["Uint8Array", Uint8Array],
  ["Int8Array", Int8Array],
  ["Int16Array", Int16Array],
  ["Uint16Array", Uint16Array],
  ["Uint32Array", Uint32Array],
  ["Uint8ClampedArray", Uint8ClampedArray],
  ["BigInt64Array", BigInt64Array],
  ["BigUint64Array", BigUint64Array]
]

const MAGIC = [0x44, 0x53, 0x54, 0x41] // "DSTA"
const VERSION = 1
const FLAG_LITTLE_ENDIAN = 1
const HEADER_SIZE = 16
const ALIGN = 8

const hostLittleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN

const isPlainObject = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** The type code of a typed array (a Node Buffer counts as a Uint8Array), or undefined. */
const typedArrayCode = (value: object): number | undefined => {
  if (!ArrayBuffer.isView(value) || value instanceof DataView) return undefined
  const code = arrayTypes.findIndex(([, Ctor]) => value instanceof Ctor)
  return code < 0 ? undefined : code
}

/** Sets a field even when it is named `__proto__`. */
const setField = (target: Record<string, unknown>, key: string, value: unknown): void => {
  if (key === "__proto__") Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true })
  else target[key] = value
}

const escapeKey = (key: string): string => (key.startsWith("$") ? "$" + key : key)
const unescapeKey = (key: string): string => (key.startsWith("$$") ? key.slice(1) : key)

const specialNumber = (n: number): string | undefined =>
  Number.isNaN(n) ? "NaN" : n === Infinity ? "Infinity" : n === -Infinity ? "-Infinity" : Object.is(n, -0) ? "-0" : undefined

/**
 * Encode a JSON-like value with typed arrays into bytes. Throws `CodecError` for values it cannot
 * represent.
 */
export const encodeArtifact = (value: unknown): Uint8Array => {
  const arrays: Array<TypedArray> = []
  const codes: Array<number> = []
  const arrayIndex = new Map<TypedArray, number>()
  const seen = new Set<object>()

  const toTree = (v: unknown, path: string): unknown => {
    switch (typeof v) {
      case "string":
      case "boolean":
        return v
      case "number": {
        const special = specialNumber(v)
        return special === undefined ? v : { $num: special }
      }
      case "object": {
        if (v === null) return null
        const code = typedArrayCode(v)
        if (code !== undefined) {
          const ta = v as TypedArray
          let i = arrayIndex.get(ta)
          if (i === undefined) {
            i = arrays.length
            arrays.push(ta)
            codes.push(code)
            arrayIndex.set(ta, i)
          }
          return { $ta: i }
        }
        if (seen.has(v)) throw new CodecError({ message: `cannot encode a cycle at ${path || "the root"}` })
        if (Array.isArray(v)) {
          seen.add(v)
          const out = v.map((item, i) => (item === undefined ? null : toTree(item, `${path}[${i}]`)))
          seen.delete(v)
          return out
        }
        if (!isPlainObject(v)) {
          throw new CodecError({
            message: `cannot encode a ${v.constructor?.name ?? "object"} at ${path || "the root"}: ` +
              "only JSON values, plain objects and typed arrays are allowed"
          })
        }
        seen.add(v)
        const out: Record<string, unknown> = {}
        for (const [key, item] of Object.entries(v)) {
          if (item === undefined) continue
          setField(out, escapeKey(key), toTree(item, path === "" ? key : `${path}.${key}`))
        }
        seen.delete(v)
        return out
      }
      default:
        throw new CodecError({ message: `cannot encode a ${typeof v} at ${path || "the root"}` })
    }
  }

  const tree = toTree(value, "")
  // Offsets depend on the JSON length, which depends on the offsets' digits: lay out the arrays
  // relative to the data start first, then fix the start to a point past a JSON part large enough.
  const relative: Array<number> = []
  let dataSize = 0
  for (const ta of arrays) {
    relative.push(dataSize)
    dataSize = align(dataSize + ta.byteLength)
  }
  const encoder = new TextEncoder()
  const jsonFor = (dataStart: number): Uint8Array =>
    encoder.encode(
      JSON.stringify({
        v: tree,
        a: arrays.map((ta, i) => [codes[i]!, dataStart + relative[i]!, ta.length])
      })
    )
  let dataStart = align(HEADER_SIZE + jsonFor(0).length)
  let json = jsonFor(dataStart)
  while (align(HEADER_SIZE + json.length) > dataStart) {
    dataStart = align(HEADER_SIZE + json.length)
    json = jsonFor(dataStart)
  }

  const out = new Uint8Array(dataStart + dataSize)
  out.set(MAGIC, 0)
  out[4] = VERSION
  out[5] = hostLittleEndian ? FLAG_LITTLE_ENDIAN : 0
  new DataView(out.buffer).setUint32(8, json.length, true)
  out.set(json, HEADER_SIZE)
  arrays.forEach((ta, i) => {
    out.set(new Uint8Array(ta.buffer, ta.byteOffset, ta.byteLength), dataStart + relative[i]!)
  })
  return out
}

/** True when `bytes` start with the artifact magic (cheap check before `decodeArtifact`). */
export const isEncodedArtifact = (bytes: Uint8Array): boolean =>
  bytes.length >= HEADER_SIZE && MAGIC.every((b, i) => bytes[i] === b)

const corrupt = (why: string): never => {
  throw new CodecError({ message: `not a valid encoded artifact: ${why}` })
}

/**
 * Decode bytes made by `encodeArtifact`. Typed arrays are views on `bytes` when their offset is
 * aligned for their element type, copies otherwise. Throws `CodecError` on malformed input.
 */
export const decodeArtifact = (bytes: Uint8Array): unknown => {
  if (!isEncodedArtifact(bytes)) return corrupt("missing the DSTA header")
  if (bytes[4] !== VERSION) return corrupt(`format version ${bytes[4]}, this build reads version ${VERSION}`)
  const littleEndian = (bytes[5]! & FLAG_LITTLE_ENDIAN) !== 0
  if (littleEndian !== hostLittleEndian) return corrupt("written on a machine of the other byte order")
  const jsonLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, true)
  if (HEADER_SIZE + jsonLength > bytes.length) return corrupt("truncated JSON part")
  let parsed: { v: unknown; a: Array<[number, number, number]> }
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes.subarray(HEADER_SIZE, HEADER_SIZE + jsonLength)))
  } catch (e) {
    return corrupt(`unreadable JSON part (${(e as Error).message})`)
  }
  if (typeof parsed !== "object" || parsed === null || !Array.isArray(parsed.a)) return corrupt("bad JSON part")

  const arrays: Array<TypedArray | undefined> = new Array(parsed.a.length)
  const arrayAt = (i: number): TypedArray => {
    const cached = arrays[i]
    if (cached !== undefined) return cached
    const entry = parsed.a[i]
    if (entry === undefined) return corrupt(`reference to array ${i} of ${parsed.a.length}`)
    const [code, offset, length] = entry
    const Ctor = arrayTypes[code]?.[1]
    if (Ctor === undefined) return corrupt(`unknown array type ${code}`)
    const byteLength = length * Ctor.BYTES_PER_ELEMENT
    if (!(offset >= 0 && length >= 0 && offset + byteLength <= bytes.length)) {
      return corrupt(`array ${i} lies outside the ${bytes.length} bytes`)
    }
    const start = bytes.byteOffset + offset
    const ta = start % Ctor.BYTES_PER_ELEMENT === 0
      ? new Ctor(bytes.buffer, start, length)
      : new Ctor(bytes.buffer.slice(start, start + byteLength) as ArrayBuffer, 0, length)
    arrays[i] = ta
    return ta
  }

  const fromTree = (v: unknown): unknown => {
    if (typeof v !== "object" || v === null) return v
    if (Array.isArray(v)) return v.map(fromTree)
    const record = v as Record<string, unknown>
    const keys = Object.keys(record)
    if (keys.length === 1) {
      if (keys[0] === "$ta" && typeof record.$ta === "number") return arrayAt(record.$ta)
      if (keys[0] === "$num") {
        switch (record.$num) {
          case "NaN":
            return NaN
          case "Infinity":
            return Infinity
          case "-Infinity":
            return -Infinity
          case "-0":
            return -0
        }
        return corrupt(`unknown number tag ${JSON.stringify(record.$num)}`)
      }
    }
    const out: Record<string, unknown> = {}
    for (const key of keys) setField(out, unescapeKey(key), fromTree(record[key]))
    return out
  }

  return fromTree(parsed.v)
}
