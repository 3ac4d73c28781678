/**
 * Loading reports from a results store: which run or sweep an id names, and a fake sweep (made with
 * SQL in an in-memory store, as the sweep runner's tables will be) shaped into means and intervals that
 * match a computation done here from the fixture's own numbers.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { loadReport } from "../../src/report/Load.js"
import { tQuantile975 } from "../../src/report/Stats.js"
import * as ReadModel from "../../src/store/ReadModel.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { DIVERGENCES, fakeAccuracy, recordFakeRun, recordFakeSweep, SEEDS, SWEEP_ID, TEMPERATURES } from "./fixtures.js"

const failureMessage = <A, E>(exit: Exit.Exit<A, E>): string => {
  assert.isTrue(Exit.isFailure(exit))
  if (Exit.isFailure(exit) && exit.cause._tag === "Fail") return (exit.cause.error as { message: string }).message
  return ""
}

describe("loadReport targets", () => {
  it.effect("an id, a unique prefix or `last` names what the read model resolves; an unknown id lists recent ids", () =>
    Effect.gen(function*() {
      yield* recordFakeRun({ runId: "20260101-aaaa", studentKey: "a", accuracy: 0.9 })
      yield* recordFakeRun({ runId: "20260102-bbbb", studentKey: "b", accuracy: 0.9 })
      yield* recordFakeSweep()
      for (const id of ["20260101-aaaa", "20260102", SWEEP_ID, "sweep-20260101-abcd-t2", "last"]) {
        const target = yield* ReadModel.resolveTarget(id)
        const report = yield* loadReport(id)
        assert.deepStrictEqual({ kind: report.kind, id: report.id }, target, id)
      }
      const ambiguous = yield* Effect.exit(loadReport("2026"))
      assert.include(failureMessage(ambiguous), "'2026' matches 2 runs and sweeps: 20260102-bbbb, 20260101-aaaa")
      const missing = yield* Effect.exit(loadReport("nope"))
      assert.include(failureMessage(missing), "no run or sweep 'nope'; recent runs: 20260102-bbbb, 20260101-aaaa")
      assert.include(failureMessage(missing), `recent sweeps: ${SWEEP_ID}`)
    }).pipe(Effect.provide(ResultsStore.layerMemory)))
})

describe("loadReport", () => {
  it.effect("a run: curves per train node, final metrics, agreement, mistakes with the teacher's view", () =>
    Effect.gen(function*() {
      yield* recordFakeRun({ runId: "r1", studentKey: "a", accuracy: 0.875 })
      const report = yield* loadReport("r1")
      assert.strictEqual(report.kind, "run")
      assert.isNull(report.sweep)
      assert.deepStrictEqual(report.curves.views[0]!.series.map((s) => `${s.label}.${s.metric}`), [
        "teacher.train_loss",
        "teacher.val_loss",
        "teacher.val_accuracy",
        "student_kd.train_loss",
        "student_kd.val_loss",
        "student_kd.val_accuracy"
      ])
      assert.strictEqual(report.curves.views[0]!.series[0]!.points.length, 8)
      assert.deepStrictEqual(report.finals.columns, ["accuracy", "errors", "nll", "agreement", "fidelity_kl", "params"])
      assert.deepStrictEqual(report.finals.rows.map((r) => [r.node, r.role, r.cells[0]?.mean]), [
        ["eval_teacher", "teacher", 0.95],
        ["eval_kd", "distilled", 0.875]
      ])
      assert.deepStrictEqual(report.agreement.map((a) => [a.node, a.summary.mean]), [["eval_kd", 0.895]])
      const kd = report.confusion.find((c) => c.node === "eval_kd")!
      assert.strictEqual(kd.total, 40)
      assert.strictEqual(kd.wrong, 5)
      assert.strictEqual(kd.teacherNode, "eval_teacher")
      // The student is wrong on 4, 5, 7, 10, 17; the teacher on 4 and 17: it got 3 of the 5 right.
      assert.strictEqual(kd.cells.reduce((a, c) => a + (c.teacherRight ?? 0), 0), 3)
      assert.include(report.facts.map(([k, v]) => `${k}: ${v}`), "nodes: 6: 2 executed, 4 cached")
    }).pipe(Effect.provide(ResultsStore.layerMemory)))

  it.effect("a sweep: accuracy against temperature per divergence, mean and 95% CI over seeds", () =>
    Effect.gen(function*() {
      yield* recordFakeSweep()
      const report = yield* loadReport(SWEEP_ID)
      const sweep = report.sweep!
      assert.strictEqual(sweep.x, "student_kd.params.objective.temperature")
      assert.deepStrictEqual(sweep.group, ["student_kd.params.objective.divergence"])
      assert.isTrue(sweep.xLog)
      assert.deepStrictEqual(sweep.charts.map((c) => c.node), ["eval_kd"])
      assert.deepStrictEqual(sweep.charts[0]!.references.map((r) => r.value), [0.95])
      const series = sweep.charts[0]!.series
      assert.deepStrictEqual(series.map((s) => s.label), DIVERGENCES.map((d) => `divergence=${d}`))
      for (const [i, d] of DIVERGENCES.entries()) {
        assert.deepStrictEqual(series[i]!.points.map((p) => p.x), [...TEMPERATURES])
        for (const [j, t] of TEMPERATURES.entries()) {
          const xs = SEEDS.map((seed) => fakeAccuracy(t, d, seed))
          const m = xs.reduce((a, b) => a + b, 0) / xs.length
          const sd = Math.sqrt(xs.reduce((a, v) => a + (v - m) ** 2, 0) / (xs.length - 1))
          const p = series[i]!.points[j]!
          assert.strictEqual(p.summary.n, 3)
          assert.approximately(p.summary.mean, m, 1e-12)
          assert.approximately(p.summary.hi! - p.summary.mean, tQuantile975(2) * sd / Math.sqrt(3), 1e-12)
        }
      }
      // Learning curves: the swept node first, one line per (temperature, divergence); the teacher once.
      const views = report.curves.views
      assert.strictEqual(views[report.curves.initial]!.name, "student_kd")
      const student = views.find((v) => v.name === "student_kd")!
      assert.strictEqual(new Set(student.series.map((s) => s.label)).size, 8)
      assert.include(student.series.map((s) => s.label), "temperature=4, divergence=reverse_kl")
      assert.deepStrictEqual([...new Set(views.find((v) => v.name === "teacher")!.series.map((s) => s.label))], ["all trials"])
      assert.strictEqual(report.finals.aggregated, true)
      assert.strictEqual(report.finals.rows.find((r) => r.node === "eval_kd")!.cells[0]!.n, 24)
      assert.strictEqual(report.confusion.find((c) => c.node === "eval_kd")!.runs, 24)
      // The shared teacher's mistakes are counted once, not once per trial.
      const teacher = report.confusion.find((c) => c.node === "eval_teacher")!
      assert.deepStrictEqual([teacher.runs, teacher.total, teacher.wrong], [1, 40, 2])
      assert.strictEqual(sweep.trials.rows.length, 24)
    }).pipe(Effect.provide(ResultsStore.layerMemory)))

  it.effect("options reach the sweep chart, and a wrong one fails with the choices", () =>
    Effect.gen(function*() {
      yield* recordFakeSweep({ baseline: "eval_teacher" })
      const byDivergence = yield* loadReport(SWEEP_ID, { x: "divergence", group: ["temperature"] })
      assert.deepStrictEqual(byDivergence.sweep!.xCategories, [...DIVERGENCES])
      assert.strictEqual(byDivergence.sweep!.charts[0]!.series.length, TEMPERATURES.length)
      assert.deepStrictEqual(byDivergence.sweep!.charts[0]!.references, [{ label: "baseline eval_teacher", value: 0.95 }])
      const agreement = yield* loadReport(SWEEP_ID, { metric: "agreement" })
      assert.strictEqual(agreement.sweep!.charts[0]!.metric, "agreement")
      // The teacher measured no agreement, so there is no baseline value to draw.
      assert.deepStrictEqual(agreement.sweep!.charts[0]!.references, [])
      const bad = yield* Effect.exit(loadReport(SWEEP_ID, { metric: "f1" }))
      assert.include(failureMessage(bad), "no evaluate node of this sweep measured 'f1'")
      assert.include(failureMessage(bad), "final metrics: accuracy, agreement, errors, fidelity_kl, nll, params")
    }).pipe(Effect.provide(ResultsStore.layerMemory)))
})
