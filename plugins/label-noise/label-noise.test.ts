import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { TfBackend } from "../../src/backend/Backend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { loadPipelineFile } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"

const TestLayer = Executor.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("cpu"), Reporter.layerSilent)
  )
)

describe("label-noise plugin", () => {
  it.live("is loaded from the pipeline's plugins list and flips the requested fraction", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "plugin-"))
      const file = join(dir, "p.yaml")
      writeFileSync(
        file,
        `name: noisy
plugins: [${resolve("plugins/label-noise/index.ts")}]
nodes:
  - { id: clean, kind: dataset, params: { source: two_moons, examples: 400 } }
  - { id: noisy, kind: label_noise, inputs: { data: clean }, params: { fraction: 0.25 } }
`
      )
      const pipeline = yield* loadPipelineFile(file, builtinRegistry)
      const executor = yield* Executor
      const result = yield* executor.run(pipeline)
      const clean = result.nodes[0]!.result!.outputs.dataset
      const noisy = result.nodes[1]!.result!.outputs.dataset
      assert.strictEqual(clean?._tag, "Dataset")
      assert.strictEqual(noisy?._tag, "Dataset")
      if (clean?._tag !== "Dataset" || noisy?._tag !== "Dataset") return
      const a = clean.splits.train.y
      const b = noisy.splits.train.y
      let changed = 0
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) changed++
      assert.isAbove(changed / a.length, 0.15)
      assert.isBelow(changed / a.length, 0.35)
      // The test split is untouched.
      assert.deepStrictEqual(noisy.splits.test.y, clean.splits.test.y)
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("a plugin that redefines a built-in kind is rejected", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(join(tmpdir(), "plugin-"))
      writeFileSync(join(dir, "dup.ts"), `export default { name: "dup", kinds: [{ kind: "train", version: 1, params: null, inputs: {}, outputs: {} }] }\n`)
      const file = join(dir, "p.yaml")
      writeFileSync(file, `name: dup\nplugins: [./dup.ts]\nnodes: []\n`)
      const error = yield* Effect.flip(loadPipelineFile(file, builtinRegistry))
      assert.strictEqual(error._tag, "RegistryError")
      assert.include(error.message, "node kind 'train' from plugin 'dup' (./dup.ts) is already registered by built-in")
    })
  )
})
