/**
 * Runs the pipeline-as-code version of mnist-kd against the same store as `npm start`, so the two share
 * every cached node.
 *
 *   npx tsx examples/01_mnist_kd_as_code/run.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer } from "effect"
import { ArtifactStore, builtinRegistry, Executor, Reporter, ResultsStore, TfBackend } from "../../src/index.js"
import { mnistKd } from "./pipeline.js"

const layer = Executor.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(
      TfBackend.layer("wasm"),
      ArtifactStore.layerFileSystem(".distillery"),
      ResultsStore.layer(".distillery/results.duckdb"),
      Reporter.layerConsole
    )
  )
)

const program = Effect.gen(function* () {
  const pipeline = yield* mnistKd().build(builtinRegistry)
  const result = yield* (yield* Executor).run(pipeline)
  for (const node of result.nodes) yield* Console.log(`${node.id}: ${node.status}`)
})

NodeRuntime.runMain(program.pipe(Effect.provide(layer)))
