/**
 * Reads what a report shows from the results store, through the read model (`store/ReadModel.ts`):
 * which run or sweep an id names (the same rule as every verb), then its nodes, learning curves, final
 * metrics and per-example mistakes, shaped by `ReportData.ts`. Means and intervals are computed here
 * from the base tables, with the same t quantile as the store's `summary` view.
 */
import { Clock, Effect, Either, Option } from "effect"
import * as ReadModel from "../store/ReadModel.js"
import type { NodeStatus } from "../store/ResultsStore.js"
import {
  agreementBars,
  comboLabeller,
  type ConfusionMap,
  confusionMap,
  CURVE_METRICS,
  curveUnit,
  type EvalNode,
  evaluateNodes,
  finalsTable,
  type NodeRow,
  paramLabels,
  type Report,
  type ReportOptions,
  runCurves,
  sweepCurves,
  sweepSection,
  trainNodes
} from "./ReportData.js"

const text = (v: unknown): string => (v === null || v === undefined ? "" : String(v))

const seconds = (start: unknown, end: unknown): string => {
  if (typeof start !== "string" || typeof end !== "string") return "–"
  const s = (Date.parse(end) - Date.parse(start)) / 1000
  return Number.isFinite(s) ? (s < 120 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`) : "–"
}

const when = (v: unknown): string => (typeof v === "string" ? v.replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC") : "–")

/** Nodes, learning curves and final metrics of a set of runs. */
const loadRuns = Effect.fn("Report.loadRuns")(function*(runIds: ReadonlyArray<string>) {
  const nodeRows: Array<NodeRow> = (yield* ReadModel.nodes(runIds)).map((n) => ({
    runId: n.runId,
    nodeId: n.nodeId,
    kind: n.kind,
    cacheKey: n.cacheKey,
    inputs: typeof n.inputs === "object" && n.inputs !== null ? (n.inputs as Record<string, string>) : {}
  }))
  const stepRows = yield* ReadModel.curves(runIds, CURVE_METRICS)
  const finalRows = yield* ReadModel.finalMetrics(runIds)
  return { nodeRows, stepRows, finalRows }
})

/**
 * Per evaluate node: its wrong examples counted by (label, prediction) over the runs, with how many of
 * them the teacher's evaluate node got right on the same example.
 */
const loadConfusion = Effect.fn("Report.loadConfusion")(function*(evals: ReadonlyArray<EvalNode>, runIds: ReadonlyArray<string>) {
  const maps: Array<ConfusionMap> = []
  for (const e of evals) {
    // A node no trial changed (one cache key) made the same mistakes in every run: count one run's.
    const m = yield* ReadModel.mistakes(runIds, e.node, e.teacherEval ?? null, { oneRun: e.keys <= 1 })
    if (m.total === 0) continue
    maps.push(confusionMap(e, m.cells, m.total, m.runs))
  }
  return maps
})

const generatedAt = Clock.currentTimeMillis.pipe(Effect.map((ms) => new Date(ms).toISOString()))

/** The report of one run. */
export const loadRunReport = Effect.fn("Report.loadRunReport")(function*(runId: string) {
  const found = yield* ReadModel.run(runId)
  if (Option.isNone(found)) return yield* new ReadModel.UnknownRunError({ id: runId, message: `no run '${runId}'` })
  const run = found.value
  const { finalRows, nodeRows, stepRows } = yield* loadRuns([runId])
  const evals = evaluateNodes(nodeRows)
  const counts = yield* ReadModel.nodeStatusCounts(runId)
  const status = (s: NodeStatus) => counts[s] ?? 0
  const facts: Array<readonly [string, string]> = [
    ["pipeline", run.pipeline],
    ["file", run.pipelinePath],
    ["status", run.status],
    ["backend", run.backend],
    ["started", when(run.startedAt)],
    ["took", seconds(run.startedAt, run.endedAt)],
    ["nodes", `${nodeRows.length}: ${status("executed")} executed, ${status("cached")} cached${status("failed") > 0 ? `, ${status("failed")} failed` : ""}`]
  ]
  if (run.sweepId !== null) facts.push(["sweep", `${run.sweepId}, trial ${text(run.trial)}`])
  const notes: Array<string> = []
  if (run.error !== null) notes.push(`error: ${run.error}`)
  if (run.status !== "succeeded") notes.push(`this run ${run.status}: what it finished is shown`)
  return {
    kind: "run",
    id: runId,
    title: `${run.pipeline} · run ${runId}`,
    generatedAt: yield* generatedAt,
    facts,
    notes,
    curves: {
      views: runCurves(trainNodes(nodeRows, stepRows), stepRows),
      initial: 0,
      unit: curveUnit(trainNodes(nodeRows, stepRows), nodeRows)
    },
    finals: finalsTable(evals, finalRows, null, false),
    agreement: agreementBars(evals, finalRows, null),
    confusion: yield* loadConfusion(evals, [runId]),
    sweep: null
  } satisfies Report
})

/** The report of a sweep: its trials' runs together, the metric against a swept param. */
export const loadSweepReport = Effect.fn("Report.loadSweepReport")(function*(sweepId: string, options: ReportOptions) {
  const found = yield* ReadModel.sweep(sweepId)
  if (Option.isNone(found)) return yield* new ReadModel.UnknownRunError({ id: sweepId, message: `no sweep '${sweepId}'` })
  const sweep = found.value
  const { params: seenParams, trials } = yield* ReadModel.trials(sweepId)
  const params = sweep.params.length > 0 ? sweep.params : seenParams
  const baseline = sweep.baseline
  const runIds = trials.flatMap((t) => (t.runId === null ? [] : [t.runId]))
  const { finalRows, nodeRows, stepRows } = yield* loadRuns(baseline === null ? runIds : [...runIds, baseline])
  const trialRuns = new Set(runIds)
  const trialNodes = nodeRows.filter((n) => trialRuns.has(n.runId))
  const evals = evaluateNodes(trialNodes)

  const section = sweepSection({ params, trials, finals: finalRows, evals, baseline, options })
  if (Either.isLeft(section)) return yield* section.left
  const labels = paramLabels(params)
  const combo = comboLabeller(params.filter((p) => !/(^|\.)seed$/.test(p)), labels)
  const curveViews = sweepCurves(trainNodes(trialNodes, stepRows), trialNodes, stepRows, trials, combo)
  // The node whose params were swept is the one whose curves differ: show it first.
  const sweptNode = params[0]?.split(".")[0]
  const initial = Math.max(0, curveViews.findIndex((v) => v.name === sweptNode))

  const done = trials.filter((t) => t.status === "succeeded").length
  const seeds = new Set(trials.flatMap((t) => (t.seed === null ? [] : [t.seed])))
  const facts: Array<readonly [string, string]> = [
    ["pipeline", sweep.pipeline],
    ["file", sweep.pipelinePath],
    ["status", sweep.status],
    ["trials", `${trials.length}${sweep.trials === null ? "" : ` of ${sweep.trials}`}, ${done} succeeded`],
    ["swept", params.map((p) => labels[p] ?? p).join(", ") || "seeds only"],
    ["seeds", seeds.size === 0 ? "–" : [...seeds].sort((a, b) => a - b).join(", ")],
    ["started", when(sweep.startedAt)],
    ["took", seconds(sweep.startedAt, sweep.endedAt)]
  ]
  if (baseline !== null) facts.push(["baseline", baseline])
  const notes: Array<string> = []
  const missing = trials.filter((t) => t.status !== "succeeded")
  if (missing.length > 0) {
    notes.push(
      `${missing.length} of ${trials.length} trials did not succeed (${missing.slice(0, 8).map((t) => `#${t.trial} ${t.status ?? "not run"}`).join(", ")}${missing.length > 8 ? ", …" : ""}); their metrics, where any, are included`
    )
  }
  return {
    kind: "sweep",
    id: sweepId,
    title: `${sweep.pipeline} · sweep ${sweepId}`,
    generatedAt: yield* generatedAt,
    facts,
    notes,
    curves: { views: curveViews, initial, unit: curveUnit(trainNodes(trialNodes, stepRows), trialNodes) },
    finals: finalsTable(evals, finalRows, trialRuns, true),
    agreement: agreementBars(evals, finalRows, trialRuns),
    confusion: yield* loadConfusion(evals, runIds),
    sweep: section.right
  } satisfies Report
})

/** The report for an id: a sweep's or a run's. */
export const loadReport = Effect.fn("Report.loadReport")(function*(id: string, options: ReportOptions = {}) {
  const target = yield* ReadModel.resolveTarget(id)
  return target.kind === "sweep" ? yield* loadSweepReport(target.id, options) : yield* loadRunReport(target.id)
})
