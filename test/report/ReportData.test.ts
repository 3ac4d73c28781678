/**
 * Preparing a report's data: roles of evaluate nodes, param names, defaults for a sweep chart (x, group,
 * metric), means and intervals per point, references, learning curves and confusion maps. Pure code.
 */
import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import {
  agreementBars,
  confusionMap,
  evaluateNodes,
  finalsTable,
  type MetricValue,
  type NodeRow,
  paramLabels,
  prefersLogScale,
  resolveParam,
  runCurves,
  type StepValue,
  sweepCurves,
  sweepSection,
  type Trial,
  trainNodes
} from "../../src/report/ReportData.js"

const node = (runId: string, nodeId: string, kind: string, inputs: Record<string, string> = {}, cacheKey = nodeId): NodeRow => ({
  runId,
  nodeId,
  kind,
  cacheKey,
  inputs
})

/** The two-moons pipeline's nodes in one run. */
const pipelineNodes = (runId: string, studentKey = "s"): Array<NodeRow> => [
  node(runId, "moons", "dataset"),
  node(runId, "teacher", "train", { data: "moons.dataset" }),
  node(runId, "soft", "generate", { model: "teacher.model", data: "moons.dataset" }),
  node(runId, "student", "train", { data: "moons.dataset", teacher: "soft.soft" }, `student-${studentKey}`),
  node(runId, "scratch", "train", { data: "moons.dataset" }),
  node(runId, "eval_teacher", "evaluate", { model: "teacher.model", data: "moons.dataset" }),
  node(runId, "eval_student", "evaluate", { model: "student.model", data: "moons.dataset", teacher: "teacher.model" }, `eval-${studentKey}`),
  node(runId, "eval_scratch", "evaluate", { model: "scratch.model", data: "moons.dataset", teacher: "teacher.model" })
]

const T = "a.params.objective.temperature"
const D = "a.params.objective.divergence"

/** 2 temperatures x 2 divergences x 3 seeds; accuracy = 0.8 + T/100 (+0.05 for jsd) + seed/1000. */
const sweepFixture = () => {
  const trials: Array<Trial> = []
  const finals: Array<MetricValue> = []
  const nodes: Array<NodeRow> = []
  let trial = 0
  for (const t of [2, 8]) {
    for (const d of ["kl", "jsd"]) {
      for (const seed of [1, 2, 3]) {
        const runId = `r${trial}`
        trials.push({ trial, runId, seed, status: "succeeded", params: { [T]: t, [D]: d } })
        nodes.push(...pipelineNodes(runId, `${t}${d}${seed}`))
        finals.push({ runId, nodeId: "eval_student", name: "accuracy", value: 0.8 + t / 100 + (d === "jsd" ? 0.05 : 0) + seed / 1000 })
        finals.push({ runId, nodeId: "eval_student", name: "agreement", value: 0.9 })
        finals.push({ runId, nodeId: "eval_teacher", name: "accuracy", value: 0.97 })
        trial++
      }
    }
  }
  return { trials, finals, nodes, evals: evaluateNodes(nodes) }
}

describe("evaluateNodes", () => {
  it("knows each evaluated model's role and its teacher's evaluate node", () => {
    const evals = evaluateNodes(pipelineNodes("r"))
    assert.deepStrictEqual(
      evals.map((e) => [e.node, e.subject, e.role, e.teacherEval]),
      [
        ["eval_teacher", "teacher", "teacher", null],
        ["eval_student", "student", "distilled", "eval_teacher"],
        ["eval_scratch", "scratch", "scratch", "eval_teacher"]
      ]
    )
  })

  it("counts a node's cache keys across runs: a sweep changes the student, not the teacher", () => {
    const evals = evaluateNodes([...pipelineNodes("r1", "x"), ...pipelineNodes("r2", "y")])
    assert.deepStrictEqual(evals.map((e) => [e.node, e.keys]), [["eval_teacher", 1], ["eval_student", 2], ["eval_scratch", 1]])
  })
})

describe("params", () => {
  it("labels params by their shortest unambiguous suffix", () => {
    assert.deepStrictEqual(paramLabels([T, D, "b.params.objective.temperature", "seed"]), {
      [T]: "a.params.objective.temperature",
      [D]: "divergence",
      "b.params.objective.temperature": "b.params.objective.temperature",
      seed: "seed"
    })
    assert.deepStrictEqual(paramLabels([T, D]), { [T]: "temperature", [D]: "divergence" })
  })

  it("resolves a param by path or suffix, and explains a wrong one", () => {
    assert.deepStrictEqual(resolveParam("x", "temperature", [T, D]), Either.right(T))
    assert.deepStrictEqual(resolveParam("x", T, [T, D]), Either.right(T))
    const wrong = resolveParam("x", "temprature", [T, D])
    assert.isTrue(Either.isLeft(wrong))
    if (Either.isLeft(wrong)) {
      assert.include(wrong.left.message, "did you mean 'temperature'?")
      assert.include(wrong.left.message, `swept params: ${T}, ${D}`)
    }
    const ambiguous = resolveParam("x", "temperature", [T, "b.params.objective.temperature"])
    assert.isTrue(Either.isLeft(ambiguous) && ambiguous.left.message.includes("matches 2 swept params"))
  })

  it("prefers a log scale for geometric progressions only", () => {
    assert.isTrue(prefersLogScale([1, 2, 4, 8, 16]))
    assert.isTrue(prefersLogScale([0.001, 0.01, 0.1]))
    assert.isFalse(prefersLogScale([1, 2, 3, 4, 5]))
    assert.isFalse(prefersLogScale([2, 4]))
    assert.isFalse(prefersLogScale([0, 1, 10, 100]))
  })
})

describe("sweepSection", () => {
  it("defaults: x = the first numeric param, one line per other param, y = accuracy, mean and CI over seeds", () => {
    const f = sweepFixture()
    const section = Either.getOrThrow(sweepSection({ params: [D, T], ...f, baseline: null, options: {} }))
    assert.strictEqual(section.x, T)
    assert.strictEqual(section.xLabel, "temperature")
    assert.deepStrictEqual(section.group, [D])
    assert.isNull(section.xCategories)
    // The teacher is the same in every trial: a reference line on the student's chart, not a chart.
    assert.deepStrictEqual(section.charts.map((c) => c.node), ["eval_student"])
    const chart = section.charts[0]!
    assert.deepStrictEqual(chart.references, [{ label: "eval_teacher (teacher, same in every trial)", value: 0.97 }])
    assert.deepStrictEqual(chart.series.map((s) => s.label), ["divergence=kl", "divergence=jsd"])
    const jsd = chart.series[1]!
    assert.deepStrictEqual(jsd.points.map((p) => p.x), [2, 8])
    // At T = 8, jsd: 0.8 + 0.08 + 0.05 + seed / 1000 for seeds 1..3.
    const at8 = jsd.points[1]!
    assert.approximately(at8.summary.mean, 0.932, 1e-12)
    // t_{0.975}(2) = 4.3027.
    assert.approximately(at8.summary.hi! - at8.summary.mean, 4.302652729749464 * 0.001 / Math.sqrt(3), 1e-12)
    assert.strictEqual(at8.summary.n, 3)
    assert.strictEqual(section.trials.rows.length, 12)
    assert.deepStrictEqual(section.trials.columns, ["trial", "seed", "run", "status", "divergence", "temperature", "eval_student.accuracy"])
  })

  it("--x, --group and --metric override the defaults", () => {
    const f = sweepFixture()
    const byDivergence = Either.getOrThrow(sweepSection({ params: [T, D], ...f, baseline: null, options: { x: "divergence", group: [] } }))
    assert.deepStrictEqual(byDivergence.xCategories, ["kl", "jsd"])
    assert.deepStrictEqual(byDivergence.group, [])
    const line = byDivergence.charts[0]!.series
    assert.strictEqual(line.length, 1)
    assert.strictEqual(line[0]!.label, "eval_student")
    // One point per divergence, pooling both temperatures and all seeds: n = 6.
    assert.deepStrictEqual(line[0]!.points.map((p) => [p.x, p.summary.n]), [[0, 6], [1, 6]])
    const agreement = Either.getOrThrow(sweepSection({ params: [T, D], ...f, baseline: null, options: { metric: "agreement" } }))
    assert.strictEqual(agreement.charts[0]!.series[0]!.points[0]!.summary.mean, 0.9)
  })

  it("a wrong --metric, --x or --group is an error naming what there is", () => {
    const f = sweepFixture()
    const metric = sweepSection({ params: [T, D], ...f, baseline: null, options: { metric: "acuracy" } })
    assert.isTrue(Either.isLeft(metric))
    if (Either.isLeft(metric)) {
      assert.strictEqual(metric.left.option, "metric")
      assert.include(metric.left.message, "did you mean 'accuracy'?")
      assert.include(metric.left.message, "final metrics: accuracy, agreement")
    }
    const x = sweepSection({ params: [T, D], ...f, baseline: null, options: { x: "alpha" } })
    assert.isTrue(Either.isLeft(x) && x.left.option === "x")
    const group = sweepSection({ params: [T, D], ...f, baseline: null, options: { group: ["temperature"] } })
    assert.isTrue(Either.isLeft(group) && group.left.message.includes("is the x param"))
  })

  it("a baseline naming an evaluate node or a run becomes a reference line", () => {
    const f = sweepFixture()
    const byNode = Either.getOrThrow(sweepSection({ params: [T, D], ...f, baseline: "eval_teacher", options: {} }))
    assert.deepStrictEqual(byNode.charts[0]!.references, [{ label: "baseline eval_teacher", value: 0.97 }])
    const finals = [...f.finals, { runId: "base", nodeId: "eval_student", name: "accuracy", value: 0.75 }]
    const byRun = Either.getOrThrow(sweepSection({ params: [T, D], ...f, finals, baseline: "base", options: {} }))
    assert.deepStrictEqual(byRun.charts[0]!.references[0], { label: "baseline base", value: 0.75 })
  })

  it("a param zipped with x (it moves in lock step) is not a group of its own", () => {
    const S = "student.params.batchSize"
    const f = sweepFixture()
    // batchSize follows temperature: 2 -> 32, 8 -> 128, as a zip gives it.
    const trials = f.trials.map((t) => ({ ...t, params: { ...t.params, [S]: t.params[T] === 2 ? 32 : 128 } }))
    const section = Either.getOrThrow(sweepSection({ params: [T, S, D], ...f, trials, baseline: null, options: {} }))
    assert.strictEqual(section.x, T)
    assert.deepStrictEqual(section.group, [D])
    assert.deepStrictEqual(section.charts[0]!.series.map((s) => s.label), ["divergence=kl", "divergence=jsd"])
  })

  it("a seeds-only sweep draws one point per evaluate node", () => {
    const trials: Array<Trial> = [1, 2, 3].map((seed) => ({ trial: seed, runId: `r${seed}`, seed, status: "succeeded", params: {} }))
    const nodes = trials.flatMap((t) => pipelineNodes(t.runId!, String(t.seed)))
    const finals = trials.map((t) => ({ runId: t.runId!, nodeId: "eval_student", name: "accuracy", value: 0.9 + t.seed! / 100 }))
    const s = Either.getOrThrow(sweepSection({ params: [], trials, finals, evals: evaluateNodes(nodes), baseline: null, options: {} }))
    assert.isNull(s.x)
    assert.deepStrictEqual(s.xCategories, ["all trials"])
    assert.approximately(s.charts[0]!.series[0]!.points[0]!.summary.mean, 0.92, 1e-12)
  })
})

describe("finals, agreement, curves, confusion", () => {
  it("the finals table keeps the measured columns in order, summarised over the runs", () => {
    const f = sweepFixture()
    const table = finalsTable(f.evals, f.finals, null, true)
    assert.deepStrictEqual(table.columns, ["accuracy", "agreement"])
    assert.deepStrictEqual(table.rows.map((r) => r.node), ["eval_teacher", "eval_student", "eval_scratch"])
    assert.strictEqual(table.rows[0]!.cells[0]!.mean, 0.97)
    assert.isNull(table.rows[0]!.cells[1])
    assert.strictEqual(table.rows[1]!.cells[0]!.n, 12)
    const bars = agreementBars(f.evals, f.finals, new Set(["r0", "r1"]))
    assert.deepStrictEqual(bars.map((b) => [b.node, b.summary.n, b.summary.mean]), [["eval_student", 2, 0.9]])
  })

  it("a run's curves are one view with a line per train node and metric, by epoch", () => {
    const steps: Array<StepValue> = [
      { runId: "r", nodeId: "teacher", name: "val_loss", step: 2, value: 0.5 },
      { runId: "r", nodeId: "teacher", name: "val_loss", step: 1, value: 0.7 },
      { runId: "r", nodeId: "student", name: "train_loss", step: 1, value: 2 }
    ]
    const nodes = trainNodes(pipelineNodes("r"), steps)
    assert.deepStrictEqual(nodes, ["teacher", "student"])
    const [view] = runCurves(nodes, steps)
    assert.deepStrictEqual(view!.series.map((s) => [s.label, s.metric, s.points]), [
      ["teacher", "val_loss", [[1, 0.7], [2, 0.5]]],
      ["student", "train_loss", [[1, 2]]]
    ])
  })

  it("a sweep's curves average seeds per combination, and show a shared node once", () => {
    const f = sweepFixture()
    const steps: Array<StepValue> = f.trials.flatMap((t) => [
      { runId: t.runId!, nodeId: "student", name: "val_accuracy", step: 1, value: 0.5 + t.seed! / 10 },
      { runId: t.runId!, nodeId: "teacher", name: "val_accuracy", step: 1, value: 0.9 }
    ])
    const views = sweepCurves(["teacher", "student"], f.nodes, steps, f.trials, (t) => `T=${t.params[T]}`)
    assert.deepStrictEqual(views[0]!.series.map((s) => [s.label, s.n, s.points]), [["all trials", 12, [[1, 0.9]]]])
    assert.deepStrictEqual(views[1]!.series.map((s) => [s.label, s.n]), [["T=2", 6], ["T=8", 6]])
    assert.approximately(views[1]!.series[0]!.points[0]![1], 0.7, 1e-12)
  })

  it("a confusion map keeps wrong cells and the classes they involve", () => {
    const [e] = evaluateNodes(pipelineNodes("r")).filter((x) => x.node === "eval_student")
    const map = confusionMap(e!, [
      { label: 3, prediction: 5, count: 4, teacherRight: 3 },
      { label: 5, prediction: 3, count: 1, teacherRight: 0 },
      { label: 1, prediction: 1, count: 9, teacherRight: 9 }
    ], 100, 1)
    assert.deepStrictEqual(map.classes, [3, 5])
    assert.strictEqual(map.wrong, 5)
    assert.strictEqual(map.cells.length, 2)
    assert.strictEqual(map.teacherNode, "eval_teacher")
  })
})
