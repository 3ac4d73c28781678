import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Option } from "effect"
import * as CacheKey from "../../src/cache/CacheKey.js"
import { CanonicalJsonError } from "../../src/cache/CanonicalJson.js"

const parts: CacheKey.KeyParts = {
  kind: "train",
  version: 2,
  params: { epochs: 5, optimizer: { name: "adam", lr: 0.001 }, layers: [128, 64] },
  inputs: { data: "a".repeat(64) + "#dataset", teacher: "b".repeat(64) + "#model" },
  seed: 42
}

describe("CacheKey", () => {
  it("is the sha256 hex of the canonical JSON", () => {
    const key = CacheKey.make(parts)
    assert.match(key, /^[0-9a-f]{64}$/)
    assert.strictEqual(CacheKey.make(parts), key)
  })

  it("does not change when keys are reordered", () => {
    const reordered: CacheKey.KeyParts = {
      seed: 42,
      inputs: { teacher: "b".repeat(64) + "#model", data: "a".repeat(64) + "#dataset" },
      params: { layers: [128, 64], optimizer: { lr: 0.001, name: "adam" }, epochs: 5 },
      version: 2,
      kind: "train"
    }
    assert.strictEqual(CacheKey.make(reordered), CacheKey.make(parts))
  })

  it("changes with any param, the version, an input, the seed or the kind", () => {
    const base = CacheKey.make(parts)
    const variants: Array<CacheKey.KeyParts> = [
      { ...parts, params: { ...(parts.params as object), epochs: 6 } },
      { ...parts, params: { ...(parts.params as object), optimizer: { name: "adam", lr: 0.002 } } },
      { ...parts, params: { ...(parts.params as object), layers: [64, 128] } },
      { ...parts, params: { ...(parts.params as object), extra: false } },
      { ...parts, version: 3 },
      { ...parts, inputs: { ...parts.inputs, teacher: "c".repeat(64) + "#model" } },
      { ...parts, seed: 43 },
      { ...parts, seed: undefined },
      { ...parts, kind: "distill" }
    ]
    const keys = new Set(variants.map(CacheKey.make))
    assert.strictEqual(keys.size, variants.length)
    assert.isFalse(keys.has(base))
  })

  it("treats an undefined param like an absent one", () => {
    assert.strictEqual(
      CacheKey.make({ ...parts, params: { ...(parts.params as object), note: undefined } }),
      CacheKey.make(parts)
    )
  })

  it("make throws, and makeEffect fails with, a CanonicalJsonError naming a NaN param", () => {
    assert.throws(() => CacheKey.make({ ...parts, params: { lr: NaN } }), CanonicalJsonError, /params\.lr/)
    const exit = Effect.runSyncExit(CacheKey.makeEffect({ ...parts, params: { lr: NaN } }))
    assert.isTrue(Exit.isFailure(exit))
    assert.deepStrictEqual(Exit.isFailure(exit) && Cause.failureOption(exit.cause).pipe(Option.map((e) => e.path)), Option.some("params.lr"))
  })

  it("diffKeyParts reports the changed leaves as dotted paths", () => {
    const after: CacheKey.KeyParts = {
      ...parts,
      version: 3,
      params: { epochs: 5, optimizer: { lr: 0.01, name: "adam" }, layers: [128, 32, 10], dropout: 0.1 },
      inputs: { ...parts.inputs, teacher: "c".repeat(64) + "#model" }
    }
    const diffs = CacheKey.diffKeyParts(parts, after)
    assert.deepStrictEqual(
      diffs.map((d) => d.path),
      ["version", "inputs.teacher", "params.dropout", "params.layers.1", "params.layers.2", "params.optimizer.lr"]
    )
    const lr = diffs.find((d) => d.path === "params.optimizer.lr")!
    assert.strictEqual(lr.field, "params")
    assert.strictEqual(lr.before, 0.001)
    assert.strictEqual(lr.after, 0.01)
    const added = diffs.find((d) => d.path === "params.layers.2")!
    assert.isUndefined(added.before)
    assert.strictEqual(added.after, 10)
  })

  it("diffKeyParts is empty exactly when the keys are equal", () => {
    const reordered = { ...parts, params: { layers: [128, 64], optimizer: { lr: 0.001, name: "adam" }, epochs: 5 } }
    assert.deepStrictEqual(CacheKey.diffKeyParts(parts, reordered), [])
    assert.deepStrictEqual(CacheKey.diffKeyParts(parts, { ...parts, seed: 1 }).map((d) => d.field), ["seed"])
  })

  it("diffKeyParts reports a change of shape at the changed node", () => {
    const diffs = CacheKey.diffKeyParts(
      { ...parts, params: { schedule: "cosine" } },
      { ...parts, params: { schedule: { name: "cosine", warmup: 2 } } }
    )
    assert.deepStrictEqual(diffs.map((d) => d.path), ["params.schedule"])
  })
})
