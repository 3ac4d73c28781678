/**
 * The distillation families beyond logit matching, each as a tiny two-moons pipeline run by the
 * executor with in-memory stores: feature hints (FitNets), relations (RKD), several teachers (ensemble),
 * deep mutual learning and born-again generations. Each pipeline runs twice: the first run executes
 * every node and leaks no tensor, the second is all cache hits; the students' losses fall, and what
 * the train node records about its objective lands in DuckDB.
 */
import * as tf from "@tensorflow/tfjs"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import { TfBackend } from "../../src/backend/TfBackend.js"
import { ArtifactStore } from "../../src/cache/ArtifactStore.js"
import { Executor } from "../../src/dag/Executor.js"
import { Reporter } from "../../src/dag/Reporter.js"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import type { Pipeline } from "../../src/pipeline/Pipeline.js"
import { resolvePipeline } from "../../src/pipeline/Validate.js"
import { parseYaml } from "../../src/pipeline/Yaml.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"

const TestLayer = Executor.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(ArtifactStore.layerMemory, ResultsStore.layerMemory, TfBackend.layer("cpu"), Reporter.layerSilent)
  )
)

const pipelineOf = (text: string): Pipeline =>
  Either.getOrThrowWith(
    Either.flatMap(parseYaml("p.yaml", text), (p) => resolvePipeline(p.value, builtinRegistry, p.source)),
    (e) => new Error(e.message)
  )

const base = `seed: 2
nodes:
  - id: moons
    kind: dataset
    params: { source: two_moons, examples: 200, noise: 0.15 }
  - id: teacher
    kind: train
    inputs: { data: moons }
    params: { model: { type: mlp, hidden: [16, 16] }, epochs: 4, batchSize: 32, optimizer: { type: adam, learningRate: 0.02 } }
`

const student = `model: { type: mlp, hidden: [8, 8] }, epochs: 6, batchSize: 32, optimizer: { type: adam, learningRate: 0.02 }`

/**
 * Runs the pipeline twice; asserts that the first run executes every node without leaking tensors and
 * the second is all cache hits. Returns the first run's id.
 */
const runTwice = (text: string) =>
  Effect.gen(function* () {
    const pipeline = pipelineOf(text)
    const executor = yield* Executor
    const before = tf.memory().numTensors
    const first = yield* executor.run(pipeline)
    assert.strictEqual(tf.memory().numTensors, before, "tensors leaked across the pipeline's nodes")
    assert.deepStrictEqual(first.nodes.filter((n) => n.status !== "executed").map((n) => n.id), [])
    const second = yield* executor.run(pipeline)
    assert.deepStrictEqual(second.nodes.filter((n) => n.status !== "cached").map((n) => n.id), [])
    return first.runId
  })

/** A node's per-epoch values of a metric, in epoch order. */
const curve = (runId: string, node: string, name: string) =>
  Effect.gen(function* () {
    const store = yield* ResultsStore
    const rows = yield* store.query(
      "SELECT value FROM metrics WHERE run_id = $1 AND node_id = $2 AND name = $3 AND step IS NOT NULL ORDER BY step",
      [runId, node, name]
    )
    return rows.rows.map((r) => Number(r[0]))
  })

const assertFalls = (values: ReadonlyArray<number>, what: string) => {
  assert.isAbove(values.length, 1, `${what}: no curve`)
  assert.isBelow(values[values.length - 1]!, values[0]!, `${what} did not fall: ${values.join(", ")}`)
}

const infoOf = (runId: string, node: string) =>
  Effect.gen(function* () {
    const store = yield* ResultsStore
    const rows = yield* store.query("SELECT info FROM nodes WHERE run_id = $1 AND node_id = $2", [runId, node])
    return rows.rows[0]![0] as Record<string, any>
  })

const finalMetric = (runId: string, node: string, name: string) =>
  Effect.gen(function* () {
    const store = yield* ResultsStore
    const rows = yield* store.query("SELECT value FROM metrics WHERE run_id = $1 AND node_id = $2 AND name = $3 AND step IS NULL", [runId, node, name])
    return Number(rows.rows[0]![0])
  })

describe("distillation families on two moons", () => {
  it.live("feature hints (FitNets): a features node caches the teacher layer; the hinted student's loss falls", () =>
    Effect.gen(function* () {
      const runId = yield* runTwice(`name: fitnets
${base}  - id: teacher_hidden1
    kind: features
    inputs: { model: teacher, data: moons }
    params: { layer: hidden1 }
  - id: hinted
    kind: train
    inputs: { data: moons, hint: teacher_hidden1 }
    params: { ${student}, hint: { studentLayer: hidden2, loss: mse, weight: 0.5 } }
  - id: eval
    kind: evaluate
    inputs: { model: hinted, data: moons }
`)
      assertFalls(yield* curve(runId, "hinted", "train_loss"), "hinted train_loss")
      const info = yield* infoOf(runId, "hinted")
      assert.strictEqual(info.objective.hintWeight, 0.5)
      assert.strictEqual(info.objective.hint.teacherLayer, "hidden1")
      assert.strictEqual(info.objective.hint.teacherModel, "teacher")
      assert.strictEqual(info.objective.hint.studentLayer, "hidden2")
      assert.match(info.objective.hint.projection, /linear 8 -> 16/)
      assert.match(info.objective.loss, /CE\(labels.*\+ 0\.5 \* hint_mse/)
      assert.strictEqual(yield* finalMetric(runId, "teacher_hidden1", "width"), 16)
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("relations (RKD) with knowledge distillation: the loss falls and every weight is recorded", () =>
    Effect.gen(function* () {
      const runId = yield* runTwice(`name: rkd
${base}  - id: teacher_penultimate
    kind: features
    inputs: { model: teacher, data: moons }
  - id: soft
    kind: generate
    inputs: { model: teacher, data: moons }
  - id: related
    kind: train
    inputs: { data: moons, teacher: soft, relation: teacher_penultimate }
    params: { ${student}, objective: { divergence: forward_kl, temperature: 2, alpha: 0.5 }, relation: { loss: both, weight: 2 } }
`)
      assertFalls(yield* curve(runId, "related", "train_loss"), "related train_loss")
      const objective = (yield* infoOf(runId, "related")).objective
      assert.strictEqual(objective.divergence, "forward_kl")
      assert.strictEqual(objective.distillWeight, 2)
      assert.strictEqual(objective.ceWeight, 0.5)
      assert.strictEqual(objective.relationWeight, 2)
      assert.strictEqual(objective.relation.loss, "both")
      assert.strictEqual(objective.relation.angleRatio, 2)
      assert.strictEqual(objective.relation.studentLayer, "penultimate")
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("several teachers: an ensemble's soft labels teach a student and are evaluated on the test split", () =>
    Effect.gen(function* () {
      const runId = yield* runTwice(`name: multi
${base}  - id: teacher_b
    kind: train
    inputs: { data: moons }
    params: { model: { type: mlp, hidden: [12] }, epochs: 4, batchSize: 32, optimizer: { type: adam, learningRate: 0.02 } }
  - id: soft_a
    kind: generate
    inputs: { model: teacher, data: moons }
  - id: soft_b
    kind: generate
    inputs: { model: teacher_b, data: moons }
    params: { topk: 1 }
  - id: both
    kind: ensemble
    inputs: { a: soft_a, b: soft_b }
    params: { mode: average_logits, weights: [2, 1] }
  - id: distilled
    kind: train
    inputs: { data: moons, teacher: both }
    params: { ${student}, objective: { divergence: forward_kl, temperature: 2, alpha: 0.7 } }
  - id: test_a
    kind: generate
    inputs: { model: teacher, data: moons }
    params: { split: test }
  - id: test_b
    kind: generate
    inputs: { model: teacher_b, data: moons }
    params: { split: test }
  - id: test_both
    kind: ensemble
    inputs: { a: test_a, b: test_b }
  - id: eval_both
    kind: evaluate_soft
    inputs: { soft: test_both }
`)
      assertFalls(yield* curve(runId, "distilled", "train_loss"), "distilled train_loss")
      const info = yield* infoOf(runId, "both")
      assert.deepStrictEqual(info.teachers, ["teacher", "teacher_b"])
      assert.approximately(info.inputs.a.weight, 2 / 3, 1e-12)
      assert.isAbove(yield* finalMetric(runId, "eval_both", "accuracy"), 0.5)
      assert.strictEqual(yield* finalMetric(runId, "eval_both", "examples"), 40)
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("deep mutual learning: both students' losses fall, each one's accuracy is recorded, both can be evaluated", () =>
    Effect.gen(function* () {
      const runId = yield* runTwice(`name: dml
${base}  - id: dml
    kind: mutual
    inputs: { data: moons }
    params:
      students: [{ type: mlp, hidden: [8, 8] }, { type: mlp, hidden: [16] }]
      epochs: 6
      batchSize: 32
      optimizer: { type: adam, learningRate: 0.02 }
  - id: eval0
    kind: evaluate
    inputs: { model: dml.model0, data: moons }
  - id: eval1
    kind: evaluate
    inputs: { model: dml.model1, data: moons, teacher: dml.model0 }
  - id: eval_best
    kind: evaluate
    inputs: { model: dml.model, data: moons }
`)
      assertFalls(yield* curve(runId, "dml", "student0_train_loss"), "student 0's loss")
      assertFalls(yield* curve(runId, "dml", "student1_train_loss"), "student 1's loss")
      const accuracies = [yield* finalMetric(runId, "dml", "student0_val_accuracy"), yield* finalMetric(runId, "dml", "student1_val_accuracy")]
      const best = yield* finalMetric(runId, "dml", "best_student")
      assert.strictEqual(best, accuracies[1]! > accuracies[0]! ? 1 : 0)
      const info = yield* infoOf(runId, "dml")
      assert.strictEqual(info.objective.students, 2)
      assert.match(info.objective.loss, /CE\(labels\) \+ 1 \* mean_\{l != k\} mean_b KL\(q_l,T \|\| q_k,T\)/)
      // `model` is the best student: the same weights as model0 or model1.
      const params = [yield* finalMetric(runId, "eval0", "params"), yield* finalMetric(runId, "eval1", "params")]
      assert.strictEqual(yield* finalMetric(runId, "eval_best", "params"), params[best]!)
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("born-again networks: every generation's loss falls; generations and their ensemble are evaluated", () =>
    Effect.gen(function* () {
      const runId = yield* runTwice(`name: ban
${base}  - id: ban
    kind: born_again
    inputs: { data: moons, teacher: teacher }
    params: { generations: 3, ${student}, objective: { divergence: forward_kl, temperature: 2, alpha: 0.5 } }
`)
      for (const gen of ["ban_gen1", "ban_gen2", "ban_gen3"]) {
        assertFalls(yield* curve(runId, gen, "train_loss"), `${gen} train_loss`)
        assert.strictEqual((yield* infoOf(runId, gen)).objective.divergence, "forward_kl")
      }
      for (const node of ["ban_gen1_eval", "ban_gen2_eval", "ban_gen3_eval", "ban_ensemble_eval"]) {
        assert.isAbove(yield* finalMetric(runId, node, "accuracy"), 0.5, node)
      }
      assert.deepStrictEqual((yield* infoOf(runId, "ban_ensemble")).teachers, ["ban_gen1", "ban_gen2", "ban_gen3"])
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("a hint without its input, or a layer the student lacks, fails the node with what to do", () =>
    Effect.gen(function* () {
      const executor = yield* Executor
      const missing = yield* Effect.flip(
        executor.run(
          pipelineOf(`name: bad
${base}  - id: hinted
    kind: train
    inputs: { data: moons }
    params: { ${student}, hint: { studentLayer: hidden1 } }
`)
        )
      )
      assert.include(missing.message, "param 'hint' needs the 'hint' input: wire a features node")
      const layer = yield* Effect.flip(
        executor.run(
          pipelineOf(`name: bad
${base}  - id: pen
    kind: features
    inputs: { model: teacher, data: moons }
  - id: hinted
    kind: train
    inputs: { data: moons, hint: pen }
    params: { ${student}, hint: { studentLayer: hidden5 } }
`)
        )
      )
      assert.include(layer.message, `Unknown layer "hidden5"; this mlp has: hidden1, hidden2, penultimate`)
      const wrongSplit = yield* Effect.flip(
        executor.run(
          pipelineOf(`name: bad
${base}  - id: pen
    kind: features
    inputs: { model: teacher, data: moons }
    params: { split: test }
  - id: related
    kind: train
    inputs: { data: moons, relation: pen }
    params: { ${student}, relation: { loss: distance } }
`)
        )
      )
      assert.include(wrongSplit.message, "they cover the test split but the student trains on the train split")
    }).pipe(Effect.provide(TestLayer))
  )
})
