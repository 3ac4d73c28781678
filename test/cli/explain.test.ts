import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { explainNode, formatExplanation } from "../../src/cli/explain.js"
import { Executor, pipelineCacheKeys } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import type { KindRegistry } from "../../src/nodes/Registry.js"
import { emptyRegistry, register } from "../../src/nodes/Registry.js"
import type { Pipeline } from "../../src/pipeline/Pipeline.js"
import { resolvePipeline } from "../../src/pipeline/Validate.js"
import { parseYaml } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { Add, testKinds, testRegistry } from "../fixtures/kinds.js"

const pipelineOf = (extra: number, seed = 0, registry: KindRegistry = testRegistry): Pipeline =>
  Either.getOrThrow(
    Either.flatMap(
      parseYaml("p.yaml", `
name: explained
seed: ${seed}
nodes:
  - { id: one, kind: constant, params: { value: 1 } }
  - { id: sum, kind: add, inputs: { a: one }, params: { extra: ${extra} } }
  - { id: twice, kind: add, inputs: { a: sum, b: sum } }
`),
      (p) => resolvePipeline(p.value, registry, p.source)
    )
  )

const layer = () => {
  const dir = mkdtempSync(join(tmpdir(), "distillery-explain-"))
  return Executor.layer.pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        ArtifactStore.layerFileSystem(join(dir, "store")),
        ResultsStore.layer(join(dir, "results.duckdb")),
        TfBackend.layer("cpu"),
        Reporter.layerSilent
      )
    )
  )
}

const explain = (pipeline: Pipeline, node: string) => Effect.map(explainNode(pipeline, node), formatExplanation)

describe("explainNode", () => {
  it.live("says cache hit or run, and what in the key changed since the node's last run", () =>
    Effect.gen(function* () {
      assert.include(yield* explain(pipelineOf(0), "sum"), "'sum' will run: no recorded run of pipeline 'explained' has computed it")
      const executor = yield* Executor
      const first = yield* executor.run(pipelineOf(0))
      assert.match(yield* explain(pipelineOf(0), "sum"), /^'sum' will hit the cache \(key [0-9a-f]{12}…\), as in run /)

      const changed = pipelineOf(5)
      const before = first.nodes.find((n) => n.id === "sum")!.key.slice(0, 12)
      const after = pipelineCacheKeys(changed).get("sum")!.slice(0, 12)
      assert.strictEqual(
        yield* explain(changed, "sum"),
        `'sum' will run: its key changed since run ${first.runId} (${before}… → ${after}…):\n  params.extra: 0 → 5`
      )
      const downstream = yield* explain(changed, "twice")
      assert.include(downstream, "input 'a': upstream 'sum' changed")
      assert.include(downstream, "input 'b': upstream 'sum' changed")
      assert.include(downstream, "it will run too: distillery explain p.yaml sum")
      assert.include(yield* explain(changed, "one"), "will hit the cache")

      // The seed and the kind's version are part of the key too.
      assert.include(yield* explain(pipelineOf(0, 3), "one"), "seed: 0 → 3")
      const bumped = Either.getOrThrow(register(emptyRegistry, "test", testKinds.map((k) => (k === Add ? { ...Add, version: 2 } : k))))
      const v2 = yield* explain(pipelineOf(0, 0, bumped), "sum")
      assert.include(v2, "kind version: 1 → 2 (the add implementation changed)")
      assert.notInclude(v2, "params.")

      const error = yield* Effect.flip(explainNode(changed, "sun"))
      assert.include(error.message, "pipeline 'explained' has no node 'sun' (did you mean 'sum'?)")
    }).pipe(Effect.provide(layer()))
  )

  it.live("a key that did not change but whose result is gone, or whose last run failed", () =>
    Effect.gen(function* () {
      const executor = yield* Executor
      const run = yield* executor.run(pipelineOf(1))
      const artifacts = yield* ArtifactStore
      yield* artifacts.removeKey(run.nodes.find((n) => n.id === "twice")!.key as never)
      assert.include(yield* explain(pipelineOf(1), "twice"), "its key is unchanged since run")
      assert.include(yield* explain(pipelineOf(1), "twice"), "no longer in the store (removed by gc?)")
    }).pipe(Effect.provide(layer()))
  )
})
