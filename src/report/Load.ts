/**
 * Reads what a report shows from the results store: which run or sweep an id names, then its nodes,
 * learning curves, final metrics and per-example mistakes, shaped by `ReportData.ts`. Sweeps come from
 * the `sweeps` and `trial_params` tables when the store has them; means and intervals are computed here
 * from the base tables, not read from views.
 */
import { Clock, Effect, Either, Schema } from "effect"
import type { QueryResult } from "../store/ResultsStore.js"
import { ResultsStore } from "../store/ResultsStore.js"
import {
  agreementBars,
  comboLabeller,
  type ConfusionCell,
  type ConfusionMap,
  confusionMap,
  CURVE_METRICS,
  type EvalNode,
  evaluateNodes,
  finalsTable,
  type MetricValue,
  type NodeRow,
  paramLabels,
  type Report,
  type ReportOptions,
  runCurves,
  type StepValue,
  sweepCurves,
  sweepSection,
  type Trial,
  trainNodes
} from "./ReportData.js"

/** Neither a run nor a sweep has the id (or a prefix matches several). */
export class UnknownTargetError extends Schema.TaggedError<UnknownTargetError>()("UnknownTargetError", {
  id: Schema.String,
  message: Schema.String
}) {}

export type Target = { readonly kind: "run"; readonly id: string } | { readonly kind: "sweep"; readonly id: string }

const text = (v: unknown): string => (v === null || v === undefined ? "" : String(v))
const num = (v: unknown): number | null => (typeof v === "number" ? v : v === null || v === undefined ? null : Number(v))
const col = (r: QueryResult, row: ReadonlyArray<unknown>, name: string): unknown => row[r.columns.indexOf(name)]
const objects = (r: QueryResult): Array<Record<string, unknown>> =>
  r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, row[i]])))

/**
 * A column meant to hold JSON: the store parses JSON-typed columns already; one typed VARCHAR (a table
 * made by hand) is parsed here, so a JSON string such as "4" is not parsed twice into a number.
 */
const jsonColumn = (r: QueryResult, name: string) => (v: unknown): unknown => {
  if (typeof v !== "string" || r.types[r.columns.indexOf(name)] === "JSON") return v
  try {
    return JSON.parse(v)
  } catch {
    return v
  }
}

/** A list of strings as one query parameter: `x IN (SELECT unnest(from_json($n::JSON, '["VARCHAR"]')))`. */
const inList = (n: number) => `(SELECT unnest(from_json($${n}::JSON, '["VARCHAR"]')))`

const seconds = (start: unknown, end: unknown): string => {
  if (typeof start !== "string" || typeof end !== "string") return "–"
  const s = (Date.parse(end) - Date.parse(start)) / 1000
  return Number.isFinite(s) ? (s < 120 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`) : "–"
}

const when = (v: unknown): string => (typeof v === "string" ? v.replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC") : "–")

/** Whether the store has the sweep tables (a store written before sweeps existed has not). */
const hasSweeps = Effect.fn("Report.hasSweeps")(function*() {
  const store = yield* ResultsStore
  const r = yield* store.query(
    "SELECT count(DISTINCT table_name) AS n FROM information_schema.tables WHERE table_name IN ('sweeps', 'trial_params')"
  )
  return num(r.rows[0]?.[0]) === 2
})

/**
 * Which run or sweep `id` names: an exact sweep or run id, else a unique prefix of one; `last` is the
 * newest sweep or stand-alone run. Fails listing recent ids when nothing matches.
 */
export const resolveTarget = Effect.fn("Report.resolveTarget")(function*(id: string) {
  const store = yield* ResultsStore
  const sweeps = yield* hasSweeps()
  if (id === "last") {
    const r = yield* store.query(
      sweeps
        ? `SELECT kind, id FROM (
             SELECT 'sweep' AS kind, sweep_id AS id, started_at FROM sweeps
             UNION ALL SELECT 'run', run_id, started_at FROM runs WHERE sweep_id IS NULL)
           ORDER BY started_at DESC LIMIT 1`
        : "SELECT 'run' AS kind, run_id AS id FROM runs ORDER BY started_at DESC LIMIT 1"
    )
    const row = r.rows[0]
    if (row === undefined) return yield* new UnknownTargetError({ id, message: "no runs yet: run a pipeline first" })
    return { kind: row[0] as "run" | "sweep", id: text(row[1]) } satisfies Target
  }
  const find = (table: "sweeps" | "runs", key: "sweep_id" | "run_id", exact: boolean) =>
    store.query(
      `SELECT ${key} FROM ${table} WHERE ${exact ? `${key} = $1` : `starts_with(${key}, $1)`} ORDER BY started_at DESC`,
      [id]
    ).pipe(Effect.map((r) => r.rows.map((row) => text(row[0]))))
  const exactSweep = sweeps ? yield* find("sweeps", "sweep_id", true) : []
  if (exactSweep.length > 0) return { kind: "sweep", id } satisfies Target
  const exactRun = yield* find("runs", "run_id", true)
  if (exactRun.length > 0) return { kind: "run", id } satisfies Target
  const sweepMatches = sweeps ? yield* find("sweeps", "sweep_id", false) : []
  const runMatches = yield* find("runs", "run_id", false)
  if (sweepMatches.length + runMatches.length === 1) {
    return sweepMatches.length === 1
      ? ({ kind: "sweep", id: sweepMatches[0]! } satisfies Target)
      : ({ kind: "run", id: runMatches[0]! } satisfies Target)
  }
  if (sweepMatches.length + runMatches.length > 1) {
    return yield* new UnknownTargetError({
      id,
      message: `'${id}' matches ${sweepMatches.length + runMatches.length} ids: ${[...sweepMatches, ...runMatches].slice(0, 10).join(", ")}; give more of it`
    })
  }
  const recentRuns = yield* store.query("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 5")
  const recentSweeps = sweeps ? yield* store.query("SELECT sweep_id FROM sweeps ORDER BY started_at DESC LIMIT 5") : null
  const list = (r: QueryResult | null) => (r === null ? "" : r.rows.map((row) => text(row[0])).join(", ") || "none")
  return yield* new UnknownTargetError({
    id,
    message: `no run or sweep '${id}'; recent runs: ${list(recentRuns)}` +
      (recentSweeps === null ? " (this store has no sweeps table)" : `; recent sweeps: ${list(recentSweeps)}`)
  })
})

/** Nodes, learning curves and final metrics of a set of runs. */
const loadRuns = Effect.fn("Report.loadRuns")(function*(runIds: ReadonlyArray<string>) {
  const store = yield* ResultsStore
  const nodes = yield* store.query(
    `SELECT run_id, node_id, kind, cache_key, inputs FROM nodes WHERE run_id IN ${inList(1)} ORDER BY started_at, rowid`,
    [runIds]
  )
  const inputsOf = jsonColumn(nodes, "inputs")
  const nodeRows: Array<NodeRow> = objects(nodes).map((o) => {
    const inputs = inputsOf(o.inputs)
    return {
      runId: text(o.run_id),
      nodeId: text(o.node_id),
      kind: text(o.kind),
      cacheKey: text(o.cache_key),
      inputs: typeof inputs === "object" && inputs !== null ? (inputs as Record<string, string>) : {}
    }
  })
  const steps = yield* store.query(
    `SELECT run_id, node_id, name, step, value FROM metrics
     WHERE run_id IN ${inList(1)} AND step IS NOT NULL AND name IN ${inList(2)}
     ORDER BY node_id, name, step`,
    [runIds, CURVE_METRICS]
  )
  const stepRows: Array<StepValue> = objects(steps).map((o) => ({
    runId: text(o.run_id),
    nodeId: text(o.node_id),
    name: text(o.name),
    step: num(o.step) ?? 0,
    value: num(o.value)
  }))
  const finals = yield* store.query(
    `SELECT run_id, node_id, name, value FROM metrics WHERE run_id IN ${inList(1)} AND step IS NULL`,
    [runIds]
  )
  const finalRows: Array<MetricValue> = objects(finals).map((o) => ({
    runId: text(o.run_id),
    nodeId: text(o.node_id),
    name: text(o.name),
    value: num(o.value)
  }))
  return { nodeRows, stepRows, finalRows }
})

/**
 * Per evaluate node: its wrong examples counted by (label, prediction) over the runs, with how many of
 * them the teacher's evaluate node got right on the same example.
 */
const loadConfusion = Effect.fn("Report.loadConfusion")(function*(evals: ReadonlyArray<EvalNode>, runIds: ReadonlyArray<string>) {
  const store = yield* ResultsStore
  const maps: Array<ConfusionMap> = []
  for (const e of evals) {
    // A node no trial changed (one cache key) made the same mistakes in every run: count one run's.
    const once = e.keys <= 1
    const oneRun = (flag: number) => `(NOT $${flag} OR e.run_id = (SELECT min(run_id) FROM examples
      WHERE run_id IN ${inList(1)} AND node_id = $2 AND prediction IS NOT NULL))`
    const counts = yield* store.query(
      `SELECT e.label, e.prediction, count(*) AS n,
              count(t.example_id) AS teacher_seen,
              count(t.example_id) FILTER (WHERE t.prediction = t.label) AS teacher_right
       FROM examples e
       LEFT JOIN examples t
         ON t.run_id = e.run_id AND t.node_id = $3 AND t.split = e.split AND t.example_id = e.example_id
       WHERE e.run_id IN ${inList(1)} AND e.node_id = $2 AND e.prediction IS NOT NULL AND e.prediction <> e.label
         AND ${oneRun(4)}
       GROUP BY e.label, e.prediction`,
      [runIds, e.node, e.teacherEval ?? "", once]
    )
    const totals = yield* store.query(
      `SELECT count(*) AS total, count(DISTINCT run_id) AS runs FROM examples e
       WHERE run_id IN ${inList(1)} AND node_id = $2 AND prediction IS NOT NULL AND ${oneRun(3)}`,
      [runIds, e.node, once]
    )
    const total = num(totals.rows[0]?.[0]) ?? 0
    if (total === 0) continue
    const cells: Array<ConfusionCell> = objects(counts).map((o) => ({
      label: num(o.label) ?? 0,
      prediction: num(o.prediction) ?? 0,
      count: num(o.n) ?? 0,
      teacherRight: (num(o.teacher_seen) ?? 0) > 0 ? num(o.teacher_right) : null
    }))
    maps.push(confusionMap(e, cells, total, num(totals.rows[0]?.[1]) ?? 1))
  }
  return maps
})

const generatedAt = Clock.currentTimeMillis.pipe(Effect.map((ms) => new Date(ms).toISOString()))

/** The report of one run. */
export const loadRunReport = Effect.fn("Report.loadRunReport")(function*(runId: string) {
  const store = yield* ResultsStore
  const runs = yield* store.query(
    `SELECT run_id, pipeline, pipeline_path, status, backend, started_at, ended_at, error, sweep_id, trial
     FROM runs WHERE run_id = $1`,
    [runId]
  )
  const run = runs.rows[0]
  if (run === undefined) return yield* new UnknownTargetError({ id: runId, message: `no run '${runId}'` })
  const { finalRows, nodeRows, stepRows } = yield* loadRuns([runId])
  const evals = evaluateNodes(nodeRows)
  const statusRows = yield* store.query("SELECT status, count(*) AS n FROM nodes WHERE run_id = $1 GROUP BY status", [runId])
  const status = (s: string) => num(statusRows.rows.find((r) => r[0] === s)?.[1]) ?? 0
  const c = (name: string) => col(runs, run, name)
  const facts: Array<readonly [string, string]> = [
    ["pipeline", text(c("pipeline"))],
    ["file", text(c("pipeline_path"))],
    ["status", text(c("status"))],
    ["backend", text(c("backend"))],
    ["started", when(c("started_at"))],
    ["took", seconds(c("started_at"), c("ended_at"))],
    ["nodes", `${nodeRows.length}: ${status("executed")} executed, ${status("cached")} cached${status("failed") > 0 ? `, ${status("failed")} failed` : ""}`]
  ]
  if (c("sweep_id") !== null) facts.push(["sweep", `${text(c("sweep_id"))}, trial ${text(c("trial"))}`])
  const notes: Array<string> = []
  if (c("error") !== null) notes.push(`error: ${text(c("error"))}`)
  if (c("status") !== "succeeded") notes.push(`this run ${text(c("status"))}: what it finished is shown`)
  return {
    kind: "run",
    id: runId,
    title: `${text(c("pipeline"))} · run ${runId}`,
    generatedAt: yield* generatedAt,
    facts,
    notes,
    curves: { views: runCurves(trainNodes(nodeRows, stepRows), stepRows), initial: 0 },
    finals: finalsTable(evals, finalRows, null, false),
    agreement: agreementBars(evals, finalRows, null),
    confusion: yield* loadConfusion(evals, [runId]),
    sweep: null
  } satisfies Report
})

/** The report of a sweep: its trials' runs together, the metric against a swept param. */
export const loadSweepReport = Effect.fn("Report.loadSweepReport")(function*(sweepId: string, options: ReportOptions) {
  const store = yield* ResultsStore
  const sweeps = yield* store.query(
    `SELECT sweep_id, pipeline, pipeline_path, started_at, ended_at, status, trials, params, baseline
     FROM sweeps WHERE sweep_id = $1`,
    [sweepId]
  )
  const sweep = sweeps.rows[0]
  if (sweep === undefined) return yield* new UnknownTargetError({ id: sweepId, message: `no sweep '${sweepId}'` })
  const c = (name: string) => col(sweeps, sweep, name)

  const tp = yield* store.query(
    "SELECT trial, run_id, seed, param, value FROM trial_params WHERE sweep_id = $1 ORDER BY trial",
    [sweepId]
  )
  const runs = yield* store.query(
    "SELECT run_id, trial, status FROM runs WHERE sweep_id = $1 ORDER BY trial, started_at",
    [sweepId]
  )
  // Trials by number: the params from trial_params, the run (and its status) from either table.
  const trialMap = new Map<number, { trial: number; runId: string | null; seed: number | null; params: Record<string, unknown> }>()
  const trialOf = (n: number) => {
    let t = trialMap.get(n)
    if (t === undefined) {
      t = { trial: n, runId: null, seed: null, params: {} }
      trialMap.set(n, t)
    }
    return t
  }
  const seenParams: Array<string> = []
  const valueOf = jsonColumn(tp, "value")
  for (const o of objects(tp)) {
    const t = trialOf(num(o.trial) ?? 0)
    if (o.run_id !== null) t.runId = text(o.run_id)
    if (o.seed !== null) t.seed = num(o.seed)
    const param = text(o.param)
    if (param !== "") {
      t.params[param] = valueOf(o.value)
      if (!seenParams.includes(param)) seenParams.push(param)
    }
  }
  const runStatus = new Map<string, string>()
  for (const o of objects(runs)) {
    runStatus.set(text(o.run_id), text(o.status))
    if (o.trial !== null) {
      const t = trialOf(num(o.trial) ?? 0)
      if (t.runId === null) t.runId = text(o.run_id)
    }
  }
  const trials: Array<Trial> = [...trialMap.values()]
    .sort((a, b) => a.trial - b.trial)
    .map((t) => ({ ...t, status: t.runId === null ? null : runStatus.get(t.runId) ?? null }))

  const declared = jsonColumn(sweeps, "params")(c("params"))
  const params = Array.isArray(declared) && declared.length > 0 ? declared.map(text) : seenParams
  const baseline = c("baseline") === null || c("baseline") === "" ? null : text(c("baseline"))
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
    ["pipeline", text(c("pipeline"))],
    ["file", text(c("pipeline_path"))],
    ["status", text(c("status"))],
    ["trials", `${trials.length}${c("trials") === null ? "" : ` of ${text(c("trials"))}`}, ${done} succeeded`],
    ["swept", params.map((p) => labels[p] ?? p).join(", ") || "seeds only"],
    ["seeds", seeds.size === 0 ? "–" : [...seeds].sort((a, b) => a - b).join(", ")],
    ["started", when(c("started_at"))],
    ["took", seconds(c("started_at"), c("ended_at"))]
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
    title: `${text(c("pipeline"))} · sweep ${sweepId}`,
    generatedAt: yield* generatedAt,
    facts,
    notes,
    curves: { views: curveViews, initial },
    finals: finalsTable(evals, finalRows, trialRuns, true),
    agreement: agreementBars(evals, finalRows, trialRuns),
    confusion: yield* loadConfusion(evals, runIds),
    sweep: section.right
  } satisfies Report
})

/** The report for an id: a sweep's or a run's. */
export const loadReport = Effect.fn("Report.loadReport")(function*(id: string, options: ReportOptions = {}) {
  const target = yield* resolveTarget(id)
  return target.kind === "sweep" ? yield* loadSweepReport(target.id, options) : yield* loadRunReport(target.id)
})
