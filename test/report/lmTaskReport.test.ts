/**
 * The report counts lm_task_evaluate nodes as evaluate nodes: in a distilling-step-by-step pipeline
 * (a teacher lm_train sampled by lm_generate, parsed by lm_parse, mixed into a multi-task corpus that a
 * student lm_train learns from), the student is `distilled`, the teacher `teacher`, a model trained on
 * the gold corpus alone `scratch`; a student sampled for its own lm_evaluate is not made a teacher;
 * and a sweep charts one line per changed lm_task_evaluate node against the swept x; several changed
 * nodes (one per method) also share a first chart, a line each.
 */
import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import { curveUnit, evaluateNodes, finalsTable, type MetricValue, type NodeRow, sweepSection, trainNodes, type Trial } from "../../src/report/ReportData.js"

const node = (runId: string, nodeId: string, kind: string, inputs: Record<string, string> = {}, cacheKey = nodeId): NodeRow => ({ runId, nodeId, kind, cacheKey, inputs })

const stepByStep = (runId: string, studentKey = "s"): Array<NodeRow> => [
  node(runId, "tasks", "text"),
  node(runId, "bytes", "tokenizer"),
  node(runId, "teacher", "lm_train", { corpus: "tasks.corpus", tokenizer: "bytes.tokenizer" }),
  node(runId, "samples", "lm_generate", { model: "teacher.model", corpus: "tasks.corpus" }),
  node(runId, "parsed", "lm_parse", { samples: "samples.samples", corpus: "tasks.corpus" }),
  node(runId, "multi", "lm_tasks", { corpus: "tasks.corpus", rationales: "parsed.corpus" }),
  node(runId, "student", "lm_train", { corpus: "multi.corpus", tokenizer: "bytes.tokenizer" }, `student-${studentKey}`),
  node(runId, "scratch", "lm_train", { corpus: "tasks.corpus", tokenizer: "bytes.tokenizer" }),
  node(runId, "own", "lm_generate", { model: "student.model", corpus: "tasks.corpus" }, `own-${studentKey}`),
  node(runId, "eval_lm", "lm_evaluate", { model: "student.model", corpus: "tasks.corpus", samples: "own.samples" }, `eval-lm-${studentKey}`),
  node(runId, "eval_teacher", "lm_task_evaluate", { model: "teacher.model", corpus: "tasks.corpus" }),
  node(runId, "eval_student", "lm_task_evaluate", { model: "student.model", corpus: "tasks.corpus", reference: "parsed.corpus" }, `eval-${studentKey}`),
  node(runId, "eval_scratch", "lm_task_evaluate", { model: "scratch.model", corpus: "tasks.corpus" })
]

describe("lm_task_evaluate in the report", () => {
  it("is an evaluate node, with the roles of distilling step by step", () => {
    const evals = evaluateNodes(stepByStep("r"))
    assert.deepStrictEqual(
      evals.map((e) => [e.node, e.subject, e.role, e.teacherEval]),
      [
        ["eval_teacher", "teacher", "teacher", null],
        ["eval_student", "student", "distilled", null],
        ["eval_scratch", "scratch", "scratch", null]
      ]
    )
    const finals: Array<MetricValue> = [
      { runId: "r", nodeId: "eval_student", name: "accuracy", value: 0.5 },
      { runId: "r", nodeId: "eval_student", name: "rationale.rationale_f1", value: 0.4 }
    ]
    const table = finalsTable(evals, finals, null, false)
    assert.deepStrictEqual(table.columns, ["accuracy"])
    assert.strictEqual(table.rows.find((r) => r.node === "eval_student")!.cells[0]!.mean, 0.5)
  })

  it("a student with a teacher input is distilled too", () => {
    const rows = [
      node("r", "teacher", "lm_train", { corpus: "c.corpus" }),
      node("r", "student", "lm_train", { corpus: "c.corpus", teacher: "teacher.model" }),
      node("r", "e", "lm_task_evaluate", { model: "student.model", corpus: "c.corpus" }),
      node("r", "et", "lm_task_evaluate", { model: "teacher.model", corpus: "c.corpus" })
    ]
    assert.deepStrictEqual(evaluateNodes(rows).map((e) => [e.node, e.role]), [["e", "distilled"], ["et", "teacher"]])
  })

  it("a sweep charts one line per changed lm_task_evaluate node against the swept x", () => {
    const X = "student.params.steps"
    const trials: Array<Trial> = []
    const finals: Array<MetricValue> = []
    const nodes: Array<NodeRow> = []
    let trial = 0
    for (const steps of [50, 100, 200]) {
      for (const seed of [1, 2]) {
        const runId = `r${trial}`
        trials.push({ trial, runId, seed, status: "succeeded", params: { [X]: steps } })
        nodes.push(...stepByStep(runId, `${steps}-${seed}`))
        finals.push({ runId, nodeId: "eval_student", name: "accuracy", value: steps / 1000 + seed / 100 })
        finals.push({ runId, nodeId: "eval_teacher", name: "accuracy", value: 0.9 })
        finals.push({ runId, nodeId: "eval_scratch", name: "accuracy", value: 0.2 })
        trial++
      }
    }
    const section = Either.getOrThrow(sweepSection({ params: [X], trials, finals, evals: evaluateNodes(nodes), baseline: null, options: {} }))
    assert.strictEqual(section.x, X)
    assert.deepStrictEqual(section.charts.map((c) => [c.node, c.role]), [["eval_student", "distilled"]])
    const chart = section.charts[0]!
    assert.strictEqual(chart.series.length, 1)
    assert.deepStrictEqual(chart.series[0]!.points.map((p) => p.x), [50, 100, 200])
    assert.closeTo(chart.series[0]!.points[0]!.summary.mean, 0.05 + 0.015, 1e-12)
    // The teacher and the scratch model did not change: dashed references on the student's chart.
    assert.deepStrictEqual(chart.references.map((r) => [r.label, r.value]), [
      ["eval_teacher (teacher, same in every trial)", 0.9],
      ["eval_scratch (scratch, same in every trial)", 0.2]
    ])
  })
  it("methods swept together share a first chart, a line per evaluate node, the unchanged teacher dashed", () => {
    const X = "gold.params.limit"
    const trials: Array<Trial> = []
    const finals: Array<MetricValue> = []
    const nodes: Array<NodeRow> = []
    let trial = 0
    for (const limit of [100, 200]) {
      for (const seed of [1, 2, 3]) {
        const runId = `r${trial}`
        trials.push({ trial, runId, seed, status: "succeeded", params: { [X]: limit } })
        // Both the student and the scratch model change with every trial.
        nodes.push(...stepByStep(runId, `${limit}-${seed}`).map((n) => (n.nodeId === "eval_scratch" ? { ...n, cacheKey: `scratch-${limit}-${seed}` } : n)))
        finals.push({ runId, nodeId: "eval_student", name: "accuracy", value: limit / 1000 + seed / 100 })
        finals.push({ runId, nodeId: "eval_scratch", name: "accuracy", value: limit / 2000 })
        finals.push({ runId, nodeId: "eval_teacher", name: "accuracy", value: 0.9 })
        trial++
      }
    }
    const section = Either.getOrThrow(sweepSection({ params: [X], trials, finals, evals: evaluateNodes(nodes), baseline: null, options: {} }))
    assert.deepStrictEqual(section.charts.map((c) => c.node), ["every evaluate node", "eval_student", "eval_scratch"])
    const compared = section.charts[0]!
    assert.deepStrictEqual(compared.series.map((s) => s.label), ["eval_student (student)", "eval_scratch (scratch)"])
    assert.deepStrictEqual(compared.series[1]!.points.map((p) => [p.x, p.summary.mean]), [[100, 0.05], [200, 0.1]])
    assert.closeTo(compared.series[0]!.points[1]!.summary.mean, 0.2 + 0.02, 1e-12)
    assert.deepStrictEqual(compared.references.map((r) => r.label), ["eval_teacher (teacher, same in every trial)"])
  })
  it("an lm_train node's learning curves are charted per optimizer step", () => {
    const rows = stepByStep("r")
    const steps = ["teacher", "student"].map((nodeId) => ({ runId: "r", nodeId, name: "train_loss", step: 100, value: 1 }))
    const nodes = trainNodes(rows, steps)
    assert.deepStrictEqual(nodes, ["teacher", "student"])
    assert.strictEqual(curveUnit(nodes, rows), "step")
    const mixed = [...rows, node("r", "mlp", "train")]
    assert.strictEqual(curveUnit(["mlp", "student"], mixed), "epoch or step")
    assert.strictEqual(curveUnit(["mlp"], mixed), "epoch")
  })
})
