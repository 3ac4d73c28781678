/**
 * The built-in kinds together on a tiny pipeline, in process: what lands in DuckDB, that no tensors
 * leak across nodes, and that training is deterministic (a forced re-run gives the same metrics).
 */
import * as tf from "@tensorflow/tfjs"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { loadPipelineFile } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"

const TestLayer = Executor.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("wasm"), Reporter.layerSilent)
  )
)

describe("built-in kinds on two moons", () => {
  it.live("fill runs, nodes, metrics and examples, leak no tensors, and re-run deterministically", () =>
    Effect.gen(function* () {
      const pipeline = yield* loadPipelineFile("pipelines/two-moons-kd.yaml", builtinRegistry)
      const executor = yield* Executor
      const before = tf.memory().numTensors
      const first = yield* executor.run(pipeline)
      assert.strictEqual(tf.memory().numTensors, before, "tensors leaked across the pipeline's nodes")
      const store = yield* ResultsStore

      const nodes = yield* store.query("SELECT node_id, kind, status FROM nodes WHERE run_id = $1 ORDER BY node_id", [first.runId])
      assert.strictEqual(nodes.rows.length, 9)
      assert.isTrue(nodes.rows.every((r) => r[2] === "executed"))

      // The resolved objective is recorded with the distilled student.
      const info = yield* store.query("SELECT info FROM nodes WHERE node_id = 'student' AND run_id = $1", [first.runId])
      const objective = (info.rows[0]![0] as { objective: Record<string, unknown> }).objective
      assert.strictEqual(objective.divergence, "forward_kl")
      assert.strictEqual(objective.temperature, 4)
      assert.strictEqual(objective.alpha, 0.7)
      assert.match(String(objective.direction), /teacher/)

      // Curves per epoch and final metrics.
      const curve = yield* store.query(
        "SELECT count(*) FROM metrics WHERE node_id = 'teacher' AND name = 'val_accuracy' AND step IS NOT NULL AND run_id = $1",
        [first.runId]
      )
      assert.isAbove(Number(curve.rows[0]![0]), 0)

      // Per example: the teacher's prediction (generate), the filter's decision, each model's prediction.
      const perExample = yield* store.query(
        `SELECT count(*) FILTER (WHERE node_id = 'soft' AND confidence IS NOT NULL) AS teacher_rows,
                count(*) FILTER (WHERE node_id = 'confident' AND decision IS NOT NULL AND reason IS NOT NULL) AS filter_rows,
                count(*) FILTER (WHERE node_id = 'eval_student' AND subject = 'student') AS student_rows
         FROM examples WHERE run_id = $1`,
        [first.runId]
      )
      const [teacherRows, filterRows, studentRows] = perExample.rows[0]!.map(Number)
      assert.isAbove(teacherRows!, 300)
      assert.strictEqual(filterRows, teacherRows)
      assert.strictEqual(studentRows, 120)

      // Where does the student fail? A join a user would write.
      const failures = yield* store.query(
        `SELECT count(*) FROM examples s JOIN examples t USING (run_id, example_id, split)
         WHERE s.node_id = 'eval_student' AND t.node_id = 'eval_teacher' AND s.prediction <> s.label AND run_id = $1`,
        [first.runId]
      )
      const errors = first.nodes.find((n) => n.id === "eval_student")!.result!.outputs.metrics
      assert.strictEqual(Number(failures.rows[0]![0]), errors?._tag === "Metrics" ? errors.values.errors : -1)

      // Determinism: recomputing everything gives the same numbers.
      const again = yield* executor.run(pipeline, { force: true })
      const values = (r: typeof first) =>
        r.nodes.flatMap((n) => Object.values(n.result?.outputs ?? {})).flatMap((o) => (o._tag === "Metrics" ? [o.values.accuracy, o.values.nll] : []))
      assert.deepStrictEqual(values(again), values(first))
      assert.strictEqual(tf.memory().numTensors, before)
    }).pipe(Effect.provide(TestLayer))
  )
})
