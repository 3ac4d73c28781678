/**
 * Runs the 3 trials of the pipeline-as-code version of lm-kd as a sweep, against the same store as the
 * CLI, so `npx distillery sweep pipelines/lm-kd.yaml` and this share every cached node.
 *
 *   npx tsx examples/02_lm_kd_as_code/run.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer } from "effect"
import { ArtifactStore, builtinRegistry, Executor, Reporter, ResultsStore, runSweep, SweepReporter, TfBackend } from "../../src/index.js"
import { lmKd } from "./pipeline.js"

const layer = Executor.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(
      TfBackend.layer("auto"),
      ArtifactStore.layerFileSystem(".distillery"),
      ResultsStore.layer(".distillery/results.duckdb"),
      Reporter.layerSilent,
      SweepReporter.layerConsole
    )
  )
)

const program = Effect.gen(function* () {
  const sweep = yield* lmKd().buildSweep(builtinRegistry)
  const result = yield* runSweep(sweep)
  for (const t of result.trials) yield* Console.log(`trial ${t.trial} (seed ${t.seed}): ${t.status}, run ${t.runId}`)
  yield* Console.log("npx distillery show last: per student, mean ± 95% CI and the paired difference against scratch")
})

NodeRuntime.runMain(program.pipe(Effect.provide(layer)))
