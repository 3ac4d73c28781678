import { assert, describe, it } from "@effect/vitest"
import { canonicalJson, CanonicalJsonError } from "../../src/cache/CanonicalJson.js"

const throwsAt = (value: unknown, path: string) => {
  try {
    canonicalJson(value)
  } catch (e) {
    assert.instanceOf(e, CanonicalJsonError)
    assert.strictEqual((e as CanonicalJsonError).path, path)
    return
  }
  assert.fail(`expected a CanonicalJsonError at ${path}`)
}

describe("CanonicalJson", () => {
  it("sorts keys recursively and writes no whitespace", () => {
    assert.strictEqual(
      canonicalJson({ b: 1, a: { d: [1, { z: true, y: null }], c: "x" } }),
      `{"a":{"c":"x","d":[1,{"y":null,"z":true}]},"b":1}`
    )
  })

  it("gives one string whatever the key order", () => {
    const a = { lr: 0.001, layers: [{ units: 128, act: "relu" }], opt: { name: "adam", beta: [0.9, 0.999] } }
    const b = { opt: { beta: [0.9, 0.999], name: "adam" }, layers: [{ act: "relu", units: 128 }], lr: 0.001 }
    assert.strictEqual(canonicalJson(a), canonicalJson(b))
  })

  it("prints numbers in the shortest round-trip form, -0 as 0", () => {
    assert.strictEqual(canonicalJson([1, 1.0, 0.1, -0, 1e21, 1.5e-7, 123456789012]), "[1,1,0.1,0,1e+21,1.5e-7,123456789012]")
  })

  it("drops undefined fields and writes undefined array items as null", () => {
    assert.strictEqual(canonicalJson({ a: undefined, b: [undefined, 1] }), `{"b":[null,1]}`)
  })

  it("escapes strings as JSON does", () => {
    assert.strictEqual(canonicalJson({ "k\"ey": "line\nbreak ü" }), `{"k\\"ey":"line\\nbreak ü"}`)
  })

  it("rejects values with no JSON form, naming the path", () => {
    throwsAt({ a: { b: [1, NaN] } }, "a.b.1")
    throwsAt({ x: Infinity }, "x")
    throwsAt({ n: 1n }, "n")
    throwsAt({ d: new Date(0) }, "d")
    throwsAt({ t: new Float32Array(2) }, "t")
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    throwsAt(cyclic, "self")
  })
})
