import { assert, describe, it } from "@effect/vitest"
import { CodecError, decodeArtifact, encodeArtifact, isEncodedArtifact } from "../../src/cache/Codec.js"

const roundTrip = (value: unknown): unknown => decodeArtifact(encodeArtifact(value))

describe("Codec", () => {
  it("round-trips plain JSON values", () => {
    const value = { a: 1, b: "two", c: [true, false, null], d: { e: { f: [1.5, -2, 1e300] } }, g: [] , h: {} }
    assert.deepStrictEqual(roundTrip(value), value)
    assert.deepStrictEqual(roundTrip(42), 42)
    assert.deepStrictEqual(roundTrip("s"), "s")
    assert.deepStrictEqual(roundTrip(null), null)
  })

  it("round-trips typed arrays of each type, with their class", () => {
    const value = {
      f32: new Float32Array([1.5, -0, NaN, Infinity, 3.4e38]),
      f64: new Float64Array([Math.PI, -Infinity, 5e-324]),
      i32: new Int32Array([-2147483648, 0, 2147483647]),
      u8: new Uint8Array([0, 1, 255]),
      i16: new Int16Array([-3, 3]),
      u32: new Uint32Array([4294967295]),
      i64: new BigInt64Array([-(2n ** 63n), 7n])
    }
    const out = roundTrip(value) as typeof value
    assert.instanceOf(out.f32, Float32Array)
    assert.instanceOf(out.f64, Float64Array)
    assert.instanceOf(out.i32, Int32Array)
    assert.instanceOf(out.u8, Uint8Array)
    assert.deepStrictEqual(out, value)
    assert.isTrue(Object.is(out.f32[1], -0))
    assert.isTrue(Number.isNaN(out.f32[2]))
  })

  it("round-trips nested arrays, empty arrays, odd lengths and subarray views", () => {
    const backing = new Float32Array([9, 1, 2, 3, 9])
    const value = {
      splits: {
        train: { x: new Float32Array([1, 2, 3]), y: new Int32Array([0, 1, 0]), ids: new Int32Array(0) },
        test: { x: new Float32Array(0), y: new Uint8Array([7]) }
      },
      weights: [{ name: "w", shape: [3], values: backing.subarray(1, 4) }, { name: "b", shape: [0], values: new Float64Array(0) }],
      bytes: new Uint8Array([1, 2, 3]),
      after: new Float64Array([1.25])
    }
    const out = roundTrip(value) as typeof value
    assert.deepStrictEqual(out, { ...value, weights: [{ ...value.weights[0], values: new Float32Array([1, 2, 3]) }, value.weights[1]] })
  })

  it("round-trips NaN, ±Infinity and -0 in plain fields", () => {
    const out = roundTrip({ a: NaN, b: [Infinity, -Infinity], c: -0, d: 0 }) as Record<string, unknown>
    assert.isTrue(Number.isNaN(out.a))
    assert.deepStrictEqual(out.b, [Infinity, -Infinity])
    assert.isTrue(Object.is(out.c, -0))
    assert.isTrue(Object.is(out.d, 0))
  })

  it("keeps keys that look like its own tags", () => {
    const value = { $ta: 0, $num: "NaN", $$x: [{ $ta: "y" }], __proto__x: 1 }
    assert.deepStrictEqual(roundTrip(value), value)
    const proto = JSON.parse(`{"__proto__": {"polluted": true}}`)
    const out = roundTrip(proto) as Record<string, unknown>
    assert.deepStrictEqual(Object.keys(out), ["__proto__"])
    assert.isUndefined(({} as Record<string, unknown>).polluted)
  })

  it("drops undefined fields and shares one array referenced twice", () => {
    const shared = new Float32Array([1, 2])
    const out = roundTrip({ a: undefined, b: shared, c: shared }) as Record<string, unknown>
    assert.deepStrictEqual(Object.keys(out), ["b", "c"])
    assert.strictEqual(out.b, out.c)
  })

  it("aligns array data so decoding makes views, not copies", () => {
    const value = { labels: new Uint8Array([1, 2, 3]), x: new Float32Array(1000).map((_, i) => i / 7), z: new Float64Array([1, 2]) }
    const bytes = encodeArtifact(value)
    assert.isTrue(isEncodedArtifact(bytes))
    const out = decodeArtifact(bytes) as typeof value
    assert.strictEqual(out.x.buffer, bytes.buffer)
    assert.strictEqual(out.z.buffer, bytes.buffer)
    assert.strictEqual(out.x.byteOffset % 8, 0)
    assert.deepStrictEqual(out, value)
  })

  it("decodes from a misaligned copy by copying", () => {
    const value = { x: new Float64Array([1, 2, 3]) }
    const bytes = encodeArtifact(value)
    const shifted = new Uint8Array(bytes.length + 1)
    shifted.set(bytes, 1)
    assert.deepStrictEqual(decodeArtifact(shifted.subarray(1)), value)
  })

  it("rejects what it cannot encode and what is not an artifact", () => {
    assert.throws(() => encodeArtifact({ when: new Date(0) }), CodecError, /Date at when/)
    assert.throws(() => encodeArtifact({ n: 1n }), CodecError, /bigint at n/)
    assert.throws(() => decodeArtifact(new TextEncoder().encode("{\"not\":\"an artifact\"}")), CodecError, /header/)
    const bytes = encodeArtifact({ x: new Float32Array(4) })
    assert.throws(() => decodeArtifact(bytes.subarray(0, bytes.length - 4)), CodecError, /outside/)
  })
})
