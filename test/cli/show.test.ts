/**
 * `show` and `report` read results through one read model: for the same id they name the same run or
 * sweep, and for the same sweep they print the same 95% intervals (here with 32 seeds, past the end
 * of a 30-row t table).
 */
import { afterEach, assert, describe, it, vi } from "@effect/vitest"
import { Effect } from "effect"
import { showTarget } from "../../src/cli/show.js"
import { loadReport } from "../../src/report/Load.js"
import { formatNumber } from "../../src/store/Format.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { recordFakeRun, recordFakeSweep, startFakeSweep, SWEEP_ID } from "../report/fixtures.js"

/** What `show id` prints. */
const showOutput = (id: string) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const spy = vi.spyOn(console, "log").mockImplementation((...args: Array<unknown>) => {
      lines.push(args.map(String).join(" "))
    })
    yield* showTarget(id).pipe(Effect.ensuring(Effect.sync(() => spy.mockRestore())))
    return lines.join("\n")
  })

/** The kind and id of the first table `show` prints: a run's or a sweep's row. */
const shownTarget = (output: string) => {
  const [header, , row] = output.split("\n")
  return { kind: header!.startsWith("sweep_id") ? "sweep" : "run", id: row!.split(/\s+/)[0]! }
}

afterEach(() => {
  vi.restoreAllMocks()
})

describe("show and report", () => {
  it.effect("resolve the same target for the same id, prefix or `last`", () =>
    Effect.gen(function*() {
      yield* recordFakeRun({ runId: "20260101-aaaa", studentKey: "a", accuracy: 0.9 })
      yield* recordFakeRun({ runId: "20260102-bbbb", studentKey: "b", accuracy: 0.9 })
      yield* recordFakeSweep()
      for (const id of ["20260101", "20260102-bbbb", SWEEP_ID, `${SWEEP_ID}-t2`, "last"]) {
        const report = yield* loadReport(id)
        assert.deepStrictEqual(shownTarget(yield* showOutput(id)), { kind: report.kind, id: report.id }, id)
      }
      for (const id of ["2026", "sweep-2026", "nope"]) {
        const shown = yield* Effect.flip(showOutput(id))
        const reported = yield* Effect.flip(loadReport(id))
        assert.strictEqual(shown._tag, "UnknownRunError")
        assert.deepStrictEqual([reported._tag, reported.message], [shown._tag, shown.message])
      }
    }).pipe(Effect.provide(ResultsStore.layerMemory)))

  it.effect("print the same mean and 95% interval for a sweep", () =>
    Effect.gen(function*() {
      const store = yield* ResultsStore
      const seeds = 32
      const temperatures = [2, 4]
      const sweepId = "sweep-agree"
      const accuracy = (t: number, seed: number) => 0.8 + 0.01 * t + 0.004 * ((seed * 7) % 13)
      const trials = yield* startFakeSweep(sweepId, "student_kd.params.objective.temperature", temperatures, seeds)
      for (const t of trials) {
        yield* recordFakeRun({ runId: t.runId, sweepId, trial: t.trial, studentKey: t.runId, accuracy: accuracy(t.value, t.seed) })
      }
      yield* store.finishSweep(sweepId, "succeeded")
      yield* store.refreshViews()

      const shown = yield* showOutput(sweepId)
      assert.include(shown, `accuracy: mean ± 95% CI over ${seeds} seeds`)
      const report = yield* loadReport(sweepId)
      const points = report.sweep!.charts.find((c) => c.node === "eval_kd")!.series[0]!.points
      assert.deepStrictEqual(points.map((p) => p.x), temperatures)
      for (const p of points) {
        assert.strictEqual(p.summary.n, seeds)
        const cell = `${formatNumber(p.summary.mean)} ± ${formatNumber(p.summary.hi! - p.summary.mean)}`
        assert.match(shown, new RegExp(`^\\s*${p.x}\\s+${cell.replace(/[.]/g, "\\.")}`, "m"), cell)
      }
    }).pipe(Effect.provide(ResultsStore.layerMemory)))
})
