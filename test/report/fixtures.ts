/**
 * Fake results for report tests: a small distillation run and a sweep over temperature x divergence x
 * seed, written through the ResultsStore API, with the sweep tables the sweep runner creates
 * (`sweeps`, `trial_params`) made here by SQL, as their contract says.
 */
import { Effect } from "effect"
import type { CacheKey, RunId } from "../../src/domain/Ids.js"
import type { ExampleRow, MetricRow } from "../../src/domain/Results.js"
import { ResultsStore } from "../../src/store/ResultsStore.js"

const key = (s: string) => s.padEnd(64, "0").slice(0, 64) as CacheKey

/** A deterministic number in [0, 1) from a string. */
export const noise = (s: string): number => {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619)
  return ((h >>> 0) % 10_000) / 10_000
}

const NODES = [
  { id: "moons", kind: "dataset", inputs: {} },
  { id: "teacher", kind: "train", inputs: { data: "moons.dataset" } },
  { id: "soft", kind: "generate", inputs: { model: "teacher.model", data: "moons.dataset" } },
  { id: "student_kd", kind: "train", inputs: { data: "moons.dataset", teacher: "soft.soft" } },
  { id: "eval_teacher", kind: "evaluate", inputs: { model: "teacher.model", data: "moons.dataset" } },
  { id: "eval_kd", kind: "evaluate", inputs: { model: "student_kd.model", data: "moons.dataset", teacher: "teacher.model" } }
] as const

export interface FakeRun {
  readonly runId: string
  readonly sweepId?: string
  readonly trial?: number
  /** The student's cache key part (differs per trial); the teacher's is shared. */
  readonly studentKey: string
  /** The distilled student's final accuracy. */
  readonly accuracy: number
  readonly status?: "succeeded" | "failed"
}

const curve = (runId: string, scale: number, epochs: number): Array<MetricRow> =>
  Array.from({ length: epochs }, (_, i) => {
    const e = i + 1
    return [
      { name: "train_loss", step: e, value: scale * Math.exp(-e / 3) + 0.1 + 0.02 * noise(`${runId}t${e}`) },
      { name: "val_loss", step: e, value: scale * Math.exp(-e / 3) + 0.15 + 0.03 * noise(`${runId}v${e}`) },
      { name: "val_accuracy", step: e, value: 0.95 - 0.5 * Math.exp(-e / 2) - 0.02 * noise(`${runId}a${e}`) },
      { name: "examples_per_second", step: e, value: 1000 }
    ]
  }).flat()

/** 40 test examples of 3 classes; the model is wrong where `wrong(i)`. */
const examples = (subject: string, wrong: (i: number) => boolean): Array<ExampleRow> =>
  Array.from({ length: 40 }, (_, i) => ({
    split: "test" as const,
    exampleId: i,
    label: i % 3,
    subject,
    prediction: wrong(i) ? (i % 3 + 1 + (i % 2)) % 3 : i % 3,
    confidence: 0.8
  }))

/** Records one fake run of the tiny KD pipeline. */
export const recordFakeRun = (r: FakeRun) =>
  Effect.gen(function*() {
    const store = yield* ResultsStore
    const runId = r.runId as RunId
    yield* store.startRun({
      runId,
      pipeline: "fake-kd",
      pipelinePath: "pipelines/fake-kd.yaml",
      backend: "cpu",
      sweepId: r.sweepId,
      trial: r.trial
    })
    for (const n of NODES) {
      const k = key(n.id === "student_kd" || n.id === "eval_kd" ? `${n.id}${r.studentKey}` : n.id)
      yield* store.recordNode({
        runId,
        nodeId: n.id,
        kind: n.kind,
        kindVersion: 1,
        cacheKey: k,
        params: {},
        inputs: n.inputs,
        status: n.id === "student_kd" || n.id === "eval_kd" ? "executed" : "cached",
        durationMs: 10
      })
      if (n.id === "teacher") yield* store.recordMetrics(runId, n.id, k, curve("teacher", 0.8, 8))
      if (n.id === "student_kd") yield* store.recordMetrics(runId, n.id, k, curve(runId, 2, 8))
      if (n.id === "eval_teacher") {
        yield* store.recordMetrics(runId, n.id, k, [
          { name: "accuracy", value: 0.95 },
          { name: "errors", value: 2 },
          { name: "nll", value: 0.12 },
          { name: "params", value: 4482 }
        ])
        yield* store.recordExamples(k, examples("teacher", (i) => i === 4 || i === 17))
      }
      if (n.id === "eval_kd") {
        yield* store.recordMetrics(runId, n.id, k, [
          { name: "accuracy", value: r.accuracy },
          { name: "errors", value: Math.round((1 - r.accuracy) * 40) },
          { name: "nll", value: 0.3 },
          { name: "agreement", value: r.accuracy + 0.02 },
          { name: "fidelity_kl", value: 0.05 },
          { name: "params", value: 42 }
        ])
        // Wrong on 4, 5, 7, 10 always, and on 17 (where the teacher is wrong too).
        yield* store.recordExamples(k, examples("student_kd", (i) => [4, 5, 7, 10, 17].includes(i)))
      }
    }
    yield* store.finishRun(runId, r.status ?? "succeeded")
  })

export const TEMPERATURES = [1, 2, 4, 8] as const
export const DIVERGENCES = ["forward_kl", "reverse_kl"] as const
export const SEEDS = [1, 2, 3] as const
export const SWEEP_ID = "sweep-20260101-abcd"
export const PARAMS = ["student_kd.params.objective.temperature", "student_kd.params.objective.divergence"] as const

/** The fake distilled accuracy of a trial: peaks at T = 4, forward KL a little better, seed noise. */
export const fakeAccuracy = (t: number, d: string, seed: number): number =>
  0.9 - 0.02 * Math.abs(Math.log2(t) - 2) + (d === "forward_kl" ? 0.01 : 0) + 0.01 * (noise(`${t}${d}${seed}`) - 0.5)

/** Creates the sweep tables (as the sweep runner's contract has them), if missing. */
export const createSweepTables = Effect.gen(function*() {
  const store = yield* ResultsStore
  yield* store.query(`CREATE TABLE IF NOT EXISTS sweeps (sweep_id VARCHAR, pipeline VARCHAR, pipeline_path VARCHAR,
    started_at TIMESTAMP, ended_at TIMESTAMP, status VARCHAR, trials INTEGER, params JSON, baseline VARCHAR)`)
  yield* store.query(`CREATE TABLE IF NOT EXISTS trial_params (sweep_id VARCHAR, trial INTEGER, run_id VARCHAR,
    seed INTEGER, param VARCHAR, value JSON)`)
})

/** A sweep of 24 trials (4 temperatures x 2 divergences x 3 seeds), each a run of the fake pipeline. */
export const recordFakeSweep = (options: { readonly baseline?: string | null } = {}) =>
  Effect.gen(function*() {
    const store = yield* ResultsStore
    yield* createSweepTables
    yield* store.query(
      `INSERT INTO sweeps (sweep_id, pipeline, pipeline_path, started_at, ended_at, status, trials, params, baseline)
       VALUES ($1, 'fake-kd', 'sweeps/fake.yaml', TIMESTAMP '2026-01-01 10:00:00',
       TIMESTAMP '2026-01-01 10:05:00', 'succeeded', 24, $2::JSON, $3)`,
      [SWEEP_ID, JSON.stringify(PARAMS), options.baseline ?? null]
    )
    let trial = 0
    for (const t of TEMPERATURES) {
      for (const d of DIVERGENCES) {
        for (const seed of SEEDS) {
          const runId = `${SWEEP_ID}-t${trial}`
          yield* recordFakeRun({ runId, sweepId: SWEEP_ID, trial, studentKey: `${t}${d}${seed}`, accuracy: fakeAccuracy(t, d, seed) })
          for (const [param, value] of [[PARAMS[0], t], [PARAMS[1], d]] as const) {
            yield* store.query("INSERT INTO trial_params VALUES ($1, $2, $3, $4, $5, $6::JSON)", [
              SWEEP_ID,
              trial,
              runId,
              seed,
              param,
              JSON.stringify(value)
            ])
          }
          trial++
        }
      }
    }
  })

/** A planned trial of `startFakeSweep`: the param value, its point, the seed; its run is `<sweepId>-t<trial>`. */
export interface FakeTrial {
  readonly value: number
  readonly point: number
  readonly seed: number
  readonly trial: number
  readonly runId: string
}

/**
 * Starts a sweep through the ResultsStore API, as the sweep runner does (so the `trials` and `summary`
 * views see it): `param` over `values`, `seeds` seeds (0, 1, ...) at each. Returns the trials, whose
 * runs the caller records, then finishes the sweep and refreshes the views.
 */
export const startFakeSweep = (sweepId: string, param: string, values: ReadonlyArray<number>, seeds: number) =>
  Effect.gen(function*() {
    const store = yield* ResultsStore
    const trials: ReadonlyArray<FakeTrial> = values.flatMap((value, point) =>
      Array.from({ length: seeds }, (_, seed) => {
        const trial = point * seeds + seed
        return { value, point, seed, trial, runId: `${sweepId}-t${trial}` }
      })
    )
    yield* store.startSweep({
      sweepId,
      pipeline: "fake-kd",
      pipelinePath: "sweeps/fake.yaml",
      params: [param],
      trials: trials.map((t) => ({ trial: t.trial, point: t.point, runId: t.runId, seed: t.seed, params: [[param, t.value]] }))
    })
    return trials
  })
