import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import { builtinRegistry } from "../../src/nodes/builtins.js"
import { pipeline } from "../../src/pipeline/Builder.js"
import type { PipelineError } from "../../src/pipeline/Pipeline.js"
import type { Sweep } from "../../src/pipeline/SweepGrammar.js"
import { gridPoints, paramPathProblem, randomPoints, resolveSweep, zipPoints } from "../../src/pipeline/SweepGrammar.js"
import { parseYaml } from "../../src/pipeline/Yaml.js"
import { TrainKind } from "../../src/nodes/train.js"
import { DatasetKind } from "../../src/index.js"
import { testRegistry } from "../fixtures/kinds.js"

const kd = (sweep: string) => `name: kd
seed: 5
nodes:
  - id: data
    kind: dataset
    params: { source: two_moons, examples: 100 }
  - id: teacher
    kind: train
    inputs: { data: data }
    params: { model: { type: mlp, hidden: [8] }, epochs: 2 }
  - id: soft
    kind: generate
    inputs: { model: teacher, data: data }
  - id: student_kd
    kind: train
    inputs: { data: data, teacher: soft }
    params:
      model: { type: mlp, hidden: [4] }
      epochs: 2
      objective: { divergence: forward_kl, temperature: 4 }
  - id: student_scratch
    kind: train
    inputs: { data: data }
    params: { model: { type: mlp, hidden: [4] }, epochs: 2 }
  - id: eval_kd
    kind: evaluate
    inputs: { model: student_kd, data: data }
  - id: eval_scratch
    kind: evaluate
    inputs: { model: student_scratch, data: data }
sweep:
${sweep}
`

const load = (text: string, registry = builtinRegistry): Either.Either<Sweep, PipelineError> =>
  Either.flatMap(parseYaml("s.yaml", text), (p) => resolveSweep(p.value, registry, p.source))

const ok = (text: string, registry = builtinRegistry) => Either.getOrThrow(load(text, registry))
const problems = (text: string): string => {
  const result = load(text)
  assert.isTrue(Either.isLeft(result), "expected a PipelineError")
  return (result as Either.Left<PipelineError, Sweep>).left.message
}

describe("sweep expansion", () => {
  it("grid is the cartesian product, first path slowest", () => {
    const points = gridPoints({ a: [1, 2], b: ["x", "y", "z"] })
    assert.deepStrictEqual(points.map((p) => p.map(([, v]) => v)), [
      [1, "x"], [1, "y"], [1, "z"], [2, "x"], [2, "y"], [2, "z"]
    ])
  })

  it("zip goes in lock-step", () => {
    assert.deepStrictEqual(zipPoints({ a: [1, 2, 3], b: [10, 20, 30] }).map((p) => p.map(([, v]) => v)), [[1, 10], [2, 20], [3, 30]])
  })

  it("random is seeded, stays in its ranges, and a path's samples do not depend on the others", () => {
    const spec = { n: 50, params: { t: { min: 1, max: 20, log: true }, k: { min: 1, max: 5, int: true }, d: ["a", "b"] } }
    const first = randomPoints(spec, 7)
    assert.deepStrictEqual(randomPoints(spec, 7), first)
    assert.notDeepEqual(randomPoints(spec, 8), first)
    for (const point of first) {
      const v = Object.fromEntries(point) as { t: number; k: number; d: string }
      assert.isTrue(v.t >= 1 && v.t <= 20)
      assert.isTrue(Number.isInteger(v.k) && v.k >= 1 && v.k <= 5)
      assert.include(["a", "b"], v.d)
    }
    assert.sameMembers([...new Set(first.map((p) => (Object.fromEntries(p) as { k: number }).k))], [1, 2, 3, 4, 5])
    const alone = randomPoints({ n: 50, params: { t: spec.params.t } }, 7)
    assert.deepStrictEqual(alone.map((p) => p[0]![1]), first.map((p) => p[0]![1]))
  })

  it("expands grid x seeds into resolved trials with seeds = pipeline seed + r", () => {
    const sweep = ok(kd(`  grid:
    student_kd.params.objective.temperature: [1, 2]
    student_kd.params.objective.divergence: [forward_kl, jsd]
  seeds: 3
  baseline: student_scratch`))
    assert.strictEqual(sweep.trials.length, 12)
    assert.deepStrictEqual(sweep.seeds, [5, 6, 7])
    assert.deepStrictEqual(sweep.paths, ["student_kd.params.objective.temperature", "student_kd.params.objective.divergence"])
    assert.strictEqual(sweep.baselineNode, "eval_scratch")
    const t = sweep.trials[7]!
    assert.deepStrictEqual([t.index, t.point, t.repeat, t.seed], [7, 2, 1, 6])
    assert.deepStrictEqual(t.params, [["student_kd.params.objective.temperature", 2], ["student_kd.params.objective.divergence", "forward_kl"]])
    const student = t.pipeline.nodes.find((n) => n.id === "student_kd")!
    assert.strictEqual((student.encodedParams as { objective: { temperature: number } }).objective.temperature, 2)
    assert.strictEqual(student.seed, 6)
    // Params the sweep does not name keep the pipeline's values.
    assert.strictEqual((student.encodedParams as { epochs: number }).epochs, 2)
  })

  it("combines grid, zip and random as a product and takes a list of seeds", () => {
    const sweep = ok(kd(`  grid:
    student_kd.params.objective.temperature: [1, 2]
  zip:
    student_kd.params.epochs: [1, 3]
    student_kd.params.batchSize: [16, 32]
  random:
    n: 3
    params:
      student_kd.params.objective.alpha: { min: 0.1, max: 0.9 }
  seeds: [11, 42]`))
    assert.strictEqual(sweep.trials.length, 2 * 2 * 3 * 2)
    assert.deepStrictEqual([...new Set(sweep.trials.map((t) => t.seed))], [11, 42])
    const zipped = sweep.trials.map((t) => Object.fromEntries(t.params) as Record<string, number>)
    for (const z of zipped) assert.strictEqual(z["student_kd.params.batchSize"], z["student_kd.params.epochs"] === 1 ? 16 : 32)
  })

  it("creates missing objects along a path (a student without an objective)", () => {
    const sweep = ok(kd(`  grid:
    student_scratch.params.objective.alpha: [0.5, 1]`))
    const node = sweep.trials[1]!.pipeline.nodes.find((n) => n.id === "student_scratch")!
    assert.strictEqual((node.encodedParams as { objective: { alpha: number } }).objective.alpha, 1)
  })
})

describe("sweep errors", () => {
  it("an unknown node is a load-time error with file:line and did-you-mean", () => {
    const message = problems(kd(`  grid:
    studnt_kd.params.objective.temperature: [1, 2]`))
    assert.include(message, "s.yaml:33:5: sweep: 'studnt_kd.params.objective.temperature': unknown node 'studnt_kd' (did you mean 'student_kd'?)")
  })

  it("a param the kind does not have is named, with the nearest valid one", () => {
    const message = problems(kd(`  grid:
    student_kd.params.objective.temprature: [1, 2]
    student_kd.params.epoch: [1]
    student_kd.params.model.hidden.width: [1]`))
    assert.include(message, "s.yaml:33:5: sweep: 'student_kd.params.objective.temprature': node 'student_kd' (train): unknown param 'temprature' in 'objective' (did you mean 'temperature'?)")
    assert.include(message, "s.yaml:34:5: sweep: 'student_kd.params.epoch': node 'student_kd' (train): unknown param 'epoch' (did you mean 'epochs'?)")
    assert.include(message, "'width' in 'model.hidden' is not a valid list index")
  })

  it("a path without `params` and a path swept twice are rejected", () => {
    const message = problems(kd(`  grid:
    student_kd.epochs: [1]
    student_kd.params.epochs: [1]
  zip:
    student_kd.params.epochs: [2]`))
    assert.include(message, "'student_kd.epochs' is not a param path: write <node>.params.<param>")
    assert.include(message, "'student_kd.params.epochs' is swept twice (in grid and zip)")
  })

  it("ill-typed values are caught by resolving every trial, pointing at the value", () => {
    const message = problems(kd(`  grid:
    student_kd.params.objective.temperature: [1, -2]
    student_kd.params.objective.divergence: [forward_kl, backward_kl]`))
    assert.include(message, "s.yaml:33:50: sweep value student_kd.params.objective.temperature = -2: node 'student_kd' (train): param 'objective.temperature': expected a positive number, got -2")
    assert.match(message, /s\.yaml:34:58: sweep value student_kd\.params\.objective\.divergence = backward_kl: .*"backward_kl" is not one of 'forward_kl', 'reverse_kl'/)
    // Reported once per bad value, not once per trial or per union member.
    assert.match(message, /^2 problems in s\.yaml/)
  })

  it("unequal zip lists, bad ranges, an unknown baseline and unknown keys", () => {
    const message = problems(kd(`  zip:
    student_kd.params.epochs: [1, 2]
    student_kd.params.batchSize: [8]
  random:
    n: 2
    params:
      student_kd.params.objective.alpha: { min: 0.9, max: 0.1 }
      student_kd.params.objective.temperature: { min: 0, max: 4, log: true }
  baseline: student_scrach`))
    assert.include(message, "zip lists must have equal lengths: 'student_kd.params.epochs' has 2 values but 'student_kd.params.batchSize' has 1")
    assert.include(message, "min (0.9) must not exceed max (0.1)")
    assert.include(message, "a log range needs min > 0")
    assert.include(message, "baseline 'student_scrach' is not a node (did you mean 'student_scratch'?)")
    assert.include(problems(kd(`  gird: {}`)), "sweep: unknown key 'gird' (did you mean 'grid'?)")
  })

  it("paramPathProblem walks unions and nested structs", () => {
    assert.isUndefined(paramPathProblem(TrainKind.params.ast, ["model", "hidden"]))
    assert.isUndefined(paramPathProblem(TrainKind.params.ast, ["model", "channels"]))
    assert.isUndefined(paramPathProblem(TrainKind.params.ast, ["optimizer", "momentum"]))
    assert.isUndefined(paramPathProblem(TrainKind.params.ast, ["model", "hidden", "0"]))
    assert.include(paramPathProblem(TrainKind.params.ast, ["epochs", "x"])!, "'epochs' is a number; it has no field 'x'")
    assert.isUndefined(paramPathProblem(DatasetKind.params.ast, ["limit"]))
  })

  it("works with any registry (test kinds)", () => {
    const sweep = ok(`name: t
nodes:
  - { id: one, kind: constant, params: { value: 1 } }
  - { id: sum, kind: add, inputs: { a: one } }
sweep:
  grid: { sum.params.extra: [1, 2, 3] }
`.replace("grid: { sum.params.extra: [1, 2, 3] }", "grid:\n    sum.params.extra: [1, 2, 3]"), testRegistry)
    assert.strictEqual(sweep.trials.length, 3)
  })
})

describe("sweeps in TypeScript", () => {
  it("the builder's sweep() gives the same trials as YAML", () => {
    const p = pipeline({ name: "kd", seed: 5 })
    const data = p.add("data", DatasetKind, { params: { source: "two_moons", examples: 100 } })
    p.add("student", TrainKind, { inputs: { data: data.dataset }, params: { model: { type: "mlp", hidden: [4] }, epochs: 2 } })
    p.sweep({ grid: { "student.params.epochs": [1, 2] }, seeds: 2 })
    const sweep = Either.getOrThrow(p.buildSweep(builtinRegistry))
    assert.strictEqual(sweep.trials.length, 4)
    assert.deepStrictEqual(sweep.trials.map((t) => t.seed), [5, 6, 5, 6])
    const bad = p.sweep({ grid: { "studnt.params.epochs": [1] } }).buildSweep(builtinRegistry)
    assert.isTrue(Either.isLeft(bad))
    assert.include((bad as Either.Left<PipelineError, Sweep>).left.message, "did you mean 'student'?")
  })
})
