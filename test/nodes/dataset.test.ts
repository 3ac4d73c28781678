import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import { pipelineCacheKeys } from "../../src/dag/Executor.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import type { NodeContext } from "../../src/nodes/NodeKind.js"
import { noSourceMap } from "../../src/pipeline/Pipeline.js"
import { resolvePipeline } from "../../src/pipeline/Validate.js"
import { DatasetKind, DatasetParams } from "../../src/nodes/dataset.js"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "distillery-dataset-node-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const decode = Schema.decodeUnknownSync(DatasetParams)

/** A minimal context: decoded params, no inputs, and sinks that record what the node reports. */
const context = (params: unknown, seed = 7) => {
  const infos: Array<Readonly<Record<string, unknown>>> = []
  const ctx: NodeContext<DatasetParams, {}> = {
    nodeId: "data",
    kind: "dataset",
    params: decode(params),
    inputs: {},
    inputNodes: {},
    seed,
    backend: "cpu",
    progress: () => {},
    metric: () => {},
    examples: () => {},
    generations: () => {},
    info: (facts) => {
      infos.push(facts)
    }
  }
  return { ctx, infos }
}

describe("dataset params", () => {
  it("fills every default, and spelling a default out decodes to the same value", () => {
    assert.deepStrictEqual(decode({ source: "spirals" }), {
      source: "spirals",
      classes: 3,
      examples: 600,
      noise: 0.05,
      turns: 1,
      validation: 0.1,
      test: 0.2
    })
    assert.deepStrictEqual(decode({ source: "spirals", classes: 3, validation: 0.1 }), decode({ source: "spirals" }))
    const csv = { source: "csv", path: "x.csv", features: ["a"] }
    assert.deepStrictEqual(decode(csv), decode({ ...csv, label: "label", allowUnlabelled: false, test: 0.2 }))
    assert.isFalse("baseDir" in decode(csv))
    assert.deepStrictEqual(Schema.encodeSync(DatasetParams)(decode({ source: "mnist" })), {
      source: "mnist",
      validation: 0.1,
      test: 0.2
    })
  })

  it("rejects an unknown source, listing the valid ones, and fractions that leave nothing to train", () => {
    assert.throws(() => decode({ source: "mnst" }), /"mnist" \| "gaussian_mixture" \| "two_moons" \| "spirals" \| "jsonl" \| "csv"/)
    assert.throws(() => decode({ source: "mnist", validation: 0.5, test: 0.5 }), /validation \+ test must be below 1/)
    assert.throws(() => decode({ source: "csv", path: "x.csv", features: ["a"], classes: ["a", "a"] }), /distinct/)
    assert.throws(() => decode({ source: "gaussian_mixture", classes: 1 }))
  })
})

describe("dataset node", () => {
  it("declares its contract", () => {
    assert.strictEqual(DatasetKind.kind, "dataset")
    assert.strictEqual(DatasetKind.version, 1)
    assert.deepStrictEqual(DatasetKind.inputs, {})
    assert.deepStrictEqual(DatasetKind.outputs, { dataset: "Dataset" })
  })

  it.effect("builds MNIST with the node's seed and reports the split sizes", () =>
    Effect.gen(function* () {
      const { ctx, infos } = context({ source: "mnist", limit: 500 })
      const { dataset } = yield* DatasetKind.run(ctx)
      assert.strictEqual(dataset.name, "mnist")
      assert.deepStrictEqual(infos, [
        { source: "mnist", name: "mnist", numClasses: 10, featureShape: [784], train: 342, validation: 54, test: 104 }
      ])
      const again = yield* DatasetKind.run(context({ source: "mnist", limit: 500 }).ctx)
      assert.deepStrictEqual(again.dataset.splits.test.ids, dataset.splits.test.ids)
      const other = yield* DatasetKind.run(context({ source: "mnist", limit: 500 }, 8).ctx)
      assert.notDeepEqual(other.dataset.splits.test.ids, dataset.splits.test.ids)
    })
  )

  it.effect("builds each synthetic source", () =>
    Effect.gen(function* () {
      for (const source of ["gaussian_mixture", "two_moons", "spirals"]) {
        const { dataset } = yield* DatasetKind.run(context({ source, examples: 90 }).ctx)
        assert.strictEqual(dataset.name, source)
        const sizes = [dataset.splits.train, dataset.splits.validation, dataset.splits.test].map((s) => s.y.length)
        assert.strictEqual(sizes.reduce((a, b) => a + b, 0), 90)
      }
    })
  )

  it.effect("reads a relative file path against the working directory, or against baseDir", () =>
    Effect.gen(function* () {
      const file = path.join(dir, "points.jsonl")
      fs.writeFileSync(file, '{"v":[1,2],"label":"a"}\n{"v":[3,4],"label":"b"}\n')
      const relative = path.relative(process.cwd(), file)
      const fromCwd = yield* DatasetKind.run(context({ source: "jsonl", path: relative, features: "v", test: 0 }).ctx)
      assert.deepStrictEqual(fromCwd.dataset.classNames, ["a", "b"])
      const fromBase = yield* DatasetKind.run(
        context({ source: "jsonl", path: "points.jsonl", baseDir: dir, features: "v", test: 0 }).ctx
      )
      assert.deepStrictEqual(fromBase.dataset, fromCwd.dataset)
    })
  )

  it.effect("fails with a NodeError that keeps the data error's message", () =>
    Effect.gen(function* () {
      const file = path.join(dir, "bad.csv")
      fs.writeFileSync(file, "a,b,label\n1,2,x\n")
      const error = yield* Effect.flip(
        DatasetKind.run(context({ source: "csv", path: file, features: ["a", "c"] }).ctx)
      )
      assert.strictEqual(error._tag, "NodeError")
      assert.strictEqual(error.node, "data")
      assert.strictEqual(error.kind, "dataset")
      assert.strictEqual(error.message, `${file}:1: column 'c' not found (did you mean 'a'?); columns are: a, b, label`)
      assert.strictEqual((error.cause as { _tag: string })._tag, "DataError")
    })
  )
})

describe("dataset cache keys", () => {
  it("include a data file's content, so editing the file re-runs the node", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fp-"))
    const csv = path.join(dir, "d.csv")
    const doc = { name: "f", nodes: [{ id: "d", kind: "dataset", params: { source: "csv", path: csv, features: ["a"] } }] }
    const key = () => pipelineCacheKeys(Either.getOrThrow(resolvePipeline(doc, builtinRegistry, noSourceMap("f")))).get("d")
    fs.writeFileSync(csv, "a,label\n1,0\n2,1\n")
    const first = key()
    assert.strictEqual(key(), first)
    fs.writeFileSync(csv, "a,label\n1,0\n3,1\n")
    assert.notStrictEqual(key(), first)
  })
})
