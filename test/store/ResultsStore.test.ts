import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import type { DuckDBConnection } from "@duckdb/node-api"
import { Effect, Fiber, Layer, Option, TestClock } from "effect"
import type { CacheKey, RunId } from "../../src/domain/Ids.js"
import type { ExampleRow, GenerationRow } from "../../src/domain/Results.js"
import { ResultsStore, type ResultsStoreError, type ResultsStoreLockedError } from "../../src/store/ResultsStore.js"

const runId = (s: string) => s as RunId
const key = (c: string) => c.repeat(64) as CacheKey

const makeTempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "distillery-results-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

const fileLayer = Layer.unwrapScoped(
  Effect.map(makeTempDir, (dir) => ResultsStore.layer(path.join(dir, "results.duckdb")))
)

const backends: ReadonlyArray<
  readonly [string, Layer.Layer<ResultsStore, ResultsStoreError | ResultsStoreLockedError>]
> = [
  ["layerMemory", ResultsStore.layerMemory],
  ["layer(file)", fileLayer]
]

/** A DuckDB file as an older layout left it: its schema_version, a `nodes` table, and what `fill` adds. */
const oldStore = (file: string, version: number, fill: (c: DuckDBConnection) => Promise<unknown>) =>
  Effect.promise(async () => {
    const { DuckDBInstance } = await import("@duckdb/node-api")
    const db = await DuckDBInstance.create(file)
    const c = await db.connect()
    await c.run(`CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (${version})`)
    await c.run(`CREATE TABLE nodes (run_id VARCHAR NOT NULL, node_id VARCHAR NOT NULL, kind VARCHAR NOT NULL,
      kind_version INTEGER NOT NULL, cache_key VARCHAR NOT NULL, params JSON, inputs JSON, status VARCHAR NOT NULL,
      duration_ms DOUBLE, info JSON, started_at TIMESTAMP)`)
    await fill(c)
    c.closeSync()
    db.closeSync()
  })

const generationRows = (n: number): Array<GenerationRow> =>
  Array.from({ length: n }, (_, i) => ({
    row: i,
    promptId: `p${Math.floor(i / 2)}`,
    sample: i % 2,
    seed: 100 + i,
    prompt: "The ",
    text: `cat ${i}`,
    tokens: 5,
    meanLogProb: -1.5,
    finishReason: i === 0 ? "stop" : "length",
    ...(i % 2 === 0 ? { teacherNll: 2.25 } : {})
  }))

const exampleRows = (n: number): Array<ExampleRow> =>
  Array.from({ length: n }, (_, i) => ({
    split: "test" as const,
    exampleId: i,
    label: i % 10,
    ...(i % 2 === 0 ? { subject: "student", prediction: (i + 1) % 10, confidence: 0.5 + (i % 50) / 100 } : {}),
    entropy: i / n,
    loss: 1 / (i + 1),
    ...(i % 3 === 0 ? { decision: "drop" as const, reason: "low confidence" } : {})
  }))

/** Records a small run: two nodes, metrics and example rows. */
const recordRun = (id: string, pipeline = "mnist-kd") =>
  Effect.gen(function*() {
    const store = yield* ResultsStore
    yield* store.startRun({ runId: runId(id), pipeline, pipelinePath: "pipelines/mnist-kd.yaml", backend: "cpu" })
    yield* TestClock.adjust("1500 millis")
    yield* store.recordNode({
      runId: runId(id),
      nodeId: "teacher",
      kind: "train",
      kindVersion: 1,
      cacheKey: key("a"),
      params: { epochs: 3, optimizer: { name: "adam", lr: 0.001 } },
      inputs: { data: `${key("d")}#dataset` },
      status: "executed",
      durationMs: 1000,
      info: { checkpoint: "best" }
    })
    yield* store.recordMetrics(runId(id), "teacher", key("a"), [
      { name: "loss", step: 0, value: 2.5 },
      { name: "loss", step: 1, value: 1.25 },
      { name: "accuracy", value: 0.875 }
    ])
    yield* store.recordNode({
      runId: runId(id),
      nodeId: "eval",
      kind: "evaluate",
      kindVersion: 2,
      cacheKey: key("b"),
      params: {},
      inputs: { model: `${key("a")}#model` },
      status: "cached",
      durationMs: 0
    })
    yield* store.recordExamples(key("b"), exampleRows(6))
    yield* store.finishRun(runId(id), "succeeded")
  })

for (const [name, layer] of backends) {
  describe(`ResultsStore (${name})`, () => {
    const test = (title: string, body: Effect.Effect<void, unknown, ResultsStore>) =>
      it.scoped(title, () => Effect.provide(body, layer))

    test("creates its tables and records the schema version", Effect.gen(function*() {
      const store = yield* ResultsStore
      const tables = yield* store.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name"
      )
      assert.deepStrictEqual(tables.rows.map((r) => r[0]), [
        "example_rows", "examples", "generation_rows", "generations", "metrics", "nodes", "runs", "schema_version", "summary",
        "sweep_trials", "sweeps", "trial_params", "trial_results", "trials"
      ])
      const version = yield* store.query("SELECT version FROM schema_version")
      assert.deepStrictEqual(version.rows, [[4]])
      const columns = yield* store.query(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'examples' ORDER BY ordinal_position"
      )
      assert.deepStrictEqual(columns.rows.map((r) => r[0]), [
        "run_id", "node_id", "cache_key", "split", "example_id", "label", "subject", "prediction",
        "confidence", "entropy", "loss", "decision", "reason"
      ])
    }))

    test("reads back a recorded run with SQL", Effect.gen(function*() {
      const store = yield* ResultsStore
      yield* recordRun("r1")
      const runs = yield* store.query("SELECT run_id, pipeline, status, started_at, ended_at, error, trial FROM runs")
      assert.deepStrictEqual(runs.columns, ["run_id", "pipeline", "status", "started_at", "ended_at", "error", "trial"])
      assert.deepStrictEqual(runs.types.slice(3, 5), ["TIMESTAMP", "TIMESTAMP"])
      assert.deepStrictEqual(runs.rows, [[
        "r1", "mnist-kd", "succeeded", "1970-01-01T00:00:00.000Z", "1970-01-01T00:00:01.500Z", null, null
      ]])

      const nodes = yield* store.query(
        "SELECT node_id, kind_version, status, params, inputs, info, started_at FROM nodes ORDER BY node_id DESC"
      )
      assert.strictEqual(nodes.types[3], "JSON")
      assert.deepStrictEqual(nodes.rows[0], [
        "teacher", 1, "executed",
        { epochs: 3, optimizer: { name: "adam", lr: 0.001 } },
        { data: `${key("d")}#dataset` },
        { checkpoint: "best" },
        "1970-01-01T00:00:00.500Z" // recorded at 1.5 s, after 1000 ms
      ])
      assert.deepStrictEqual(nodes.rows[1]!.slice(0, 3), ["eval", 2, "cached"])

      const lr = yield* store.query("SELECT params->>'$.optimizer.name', (params->'$.optimizer.lr')::DOUBLE FROM nodes WHERE node_id = 'teacher'")
      assert.deepStrictEqual(lr.rows, [["adam", 0.001]])

      const metrics = yield* store.query("SELECT name, step, value FROM metrics ORDER BY name, step")
      assert.deepStrictEqual(metrics.rows, [["accuracy", null, 0.875], ["loss", 0, 2.5], ["loss", 1, 1.25]])

      const examples = yield* store.query(
        "SELECT example_id, label, subject, prediction, confidence, decision, reason FROM examples ORDER BY example_id LIMIT 4"
      )
      assert.deepStrictEqual(examples.rows, [
        [0, 0, "student", 1, 0.5, "drop", "low confidence"],
        [1, 1, null, null, null, null, null],
        [2, 2, "student", 3, 0.52, null, null],
        [3, 3, null, null, null, "drop", "low confidence"]
      ])
    }))

    test("converts DuckDB values to plain JS", Effect.gen(function*() {
      const store = yield* ResultsStore
      const result = yield* store.query(
        `SELECT 42::BIGINT AS big, 9007199254740993::BIGINT AS huge, DATE '2024-01-15' AS d,
                TIMESTAMP '2024-01-15 12:34:56.789' AS ts, [1, 2]::BIGINT[] AS list, {'a': 1::BIGINT} AS s,
                '{"x": [1, 2]}'::JSON AS j, 1.5::DECIMAL(4, 2) AS dec, NULL AS n, 'infinity'::TIMESTAMP AS inf`
      )
      assert.deepStrictEqual(result.rows[0], [
        42, "9007199254740993", "2024-01-15", "2024-01-15T12:34:56.789Z", [1, 2], { a: 1 }, { x: [1, 2] }, 1.5, null,
        "infinity"
      ])
    }))

    test("binds positional and named parameters", Effect.gen(function*() {
      const store = yield* ResultsStore
      yield* recordRun("r1")
      const positional = yield* store.query("SELECT count(*) AS n FROM examples WHERE label >= $1 AND split = $2", [3, "test"])
      assert.deepStrictEqual(positional.rows, [[3]])
      const named = yield* store.query("SELECT count(*) AS n FROM metrics WHERE name = $name", { name: "loss" })
      assert.deepStrictEqual(named.rows, [[2]])
    }))

    test("a bad query fails with QueryError carrying DuckDB's message", Effect.gen(function*() {
      const store = yield* ResultsStore
      const error = yield* Effect.flip(store.query("SELECT * FROM exampels"))
      assert.strictEqual(error._tag, "QueryError")
      assert.strictEqual(error._tag === "QueryError" && error.sql, "SELECT * FROM exampels")
      assert.match(error.message, /Table with name exampels does not exist/)
      assert.match(error.message, /Did you mean "examples"/)
      assert.notMatch(error.message, /\n\s+at /)
    }))

    test("records 10,000 example rows in one call", Effect.gen(function*() {
      const store = yield* ResultsStore
      yield* store.startRun({ runId: runId("big"), pipeline: "p", pipelinePath: "p.yaml", backend: "cpu" })
      yield* store.recordExamples(key("c"), exampleRows(10_000))
      const result = yield* store.query(
        "SELECT count(*), count(prediction), sum(example_id), count(decision) FROM example_rows WHERE cache_key = $1",
        [key("c")]
      )
      assert.deepStrictEqual(result.rows, [[10_000, 5_000, (9_999 * 10_000) / 2, 3_334]])
    }))

    test("stores a result's rows once; every run that records the node sees them", Effect.gen(function*() {
      const store = yield* ResultsStore
      for (const id of ["first", "cached"]) {
        yield* store.startRun({ runId: runId(id), pipeline: "p", pipelinePath: "p.yaml", backend: "cpu" })
        yield* store.recordNode({
          runId: runId(id), nodeId: "eval", kind: "evaluate", kindVersion: 1, cacheKey: key("e"), params: {}, inputs: {},
          status: id === "first" ? "executed" : "cached", durationMs: 1, info: {}
        })
        yield* store.recordExamples(key("e"), exampleRows(30))
      }
      assert.deepStrictEqual((yield* store.query("SELECT count(*) FROM example_rows")).rows, [[30]])
      const perRun = yield* store.query("SELECT run_id, node_id, count(*) FROM examples GROUP BY ALL ORDER BY run_id")
      assert.deepStrictEqual(perRun.rows, [["cached", "eval", 30], ["first", "eval", 30]])
    }))

    test("rejects a non-integer id without writing any row of the batch", Effect.gen(function*() {
      const store = yield* ResultsStore
      const rows = exampleRows(5)
      const error = yield* Effect.flip(
        store.recordExamples(key("c"), [...rows, { ...rows[0]!, exampleId: 1.5 }])
      )
      assert.match(error.message, /exampleId must be a 32-bit integer/)
      assert.deepStrictEqual((yield* store.query("SELECT count(*) FROM examples")).rows, [[0]])
    }))

    test("lastNodeRecord gives the newest row of a node in a pipeline", Effect.gen(function*() {
      const store = yield* ResultsStore
      assert.isTrue(Option.isNone(yield* store.lastNodeRecord("teacher", "mnist-kd")))
      yield* recordRun("r1")
      yield* TestClock.adjust("10 seconds")
      yield* store.startRun({ runId: runId("r2"), pipeline: "mnist-kd", pipelinePath: "x.yaml", backend: "wasm" })
      yield* store.recordNode({
        runId: runId("r2"), nodeId: "teacher", kind: "train", kindVersion: 2, cacheKey: key("e"),
        params: { epochs: 4 }, inputs: {}, status: "failed", durationMs: 10
      })
      yield* recordRun("other", "cifar-kd")
      const last = Option.getOrThrow(yield* store.lastNodeRecord("teacher", "mnist-kd"))
      assert.deepStrictEqual(last, {
        runId: runId("r2"), nodeId: "teacher", kind: "train", kindVersion: 2, cacheKey: key("e"),
        params: { epochs: 4 }, inputs: {}, status: "failed", durationMs: 10, info: {},
        startedAt: "1970-01-01T00:00:11.490Z"
      })
    }))

    test("interrupting a query stops DuckDB and leaves the store usable", Effect.gen(function*() {
      const store = yield* ResultsStore
      // Minutes of work if it were not stopped.
      const fiber = yield* Effect.fork(store.query("SELECT count(*) FROM range(1000000000000) a WHERE a % 7 = 3"))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 100)))
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual((yield* store.query("SELECT 1 + 1")).rows, [[2]])
    }))

    test("finishRun of an unknown run fails", Effect.gen(function*() {
      const store = yield* ResultsStore
      const error = yield* Effect.flip(store.finishRun(runId("nope"), "failed", "boom"))
      assert.match(error.message, /no such run/)
    }))
  })
}

/** Starts a node process holding `file` open for writing; resolves with it once DuckDB holds the lock. */
const holdLock = (file: string) =>
  Effect.acquireRelease(
    Effect.async<ReturnType<typeof spawn>, Error>((resume) => {
      const child = spawn(
        process.execPath,
        [
          "-e",
          `import("@duckdb/node-api").then(async (m) => { await m.DuckDBInstance.create(${JSON.stringify(file)}); console.log("ready"); setInterval(() => {}, 1000) })`
        ],
        { cwd: process.cwd(), stdio: ["ignore", "pipe", "inherit"] }
      )
      child.stdout!.on("data", (d: Buffer) => {
        if (d.toString().includes("ready")) resume(Effect.succeed(child))
      })
      child.on("error", (e) => resume(Effect.fail(e)))
    }),
    (child) => Effect.sync(() => child.kill())
  )

describe("ResultsStore (file)", () => {
  it.scoped("keeps its data across reopening, and opens read-only for queries", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir
      const file = path.join(dir, "nested", "results.duckdb")
      yield* Effect.provide(recordRun("r1"), ResultsStore.layer(file))
      const readOnly = yield* Effect.provide(
        Effect.gen(function*() {
          const store = yield* ResultsStore
          const runs = yield* store.query("SELECT run_id, status FROM runs")
          const write = yield* Effect.flip(
            store.startRun({ runId: runId("r2"), pipeline: "p", pipelinePath: "p", backend: "cpu" })
          )
          return { runs: runs.rows, readOnly: store.readOnly, write: write.message }
        }),
        ResultsStore.layer(file, { readOnly: true })
      )
      assert.deepStrictEqual(readOnly.runs, [["r1", "succeeded"]])
      assert.isTrue(readOnly.readOnly)
      assert.match(readOnly.write, /read-only/)
    }))

  it.scoped("read-only on a missing file says so", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir
      const error = yield* Effect.flip(
        Effect.provide(ResultsStore, ResultsStore.layer(path.join(dir, "results.duckdb"), { readOnly: true }))
      )
      assert.match(error.message, /no results store at .*results\.duckdb/)
    }))

  it.scopedLive("a file held by another process is waited for, then fails after lockTimeout with the holder's pid", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir
      const file = path.join(dir, "results.duckdb")
      const child = yield* holdLock(file)
      const error = yield* Effect.flip(Effect.provide(ResultsStore, ResultsStore.layer(file, { lockTimeout: "300 millis" })))
      assert.strictEqual(error._tag, "ResultsStoreLockedError")
      assert.strictEqual((error as ResultsStoreLockedError).pid, child.pid)
      assert.match(error.message, new RegExp(`results\\.duckdb stayed locked by another distillery process \\(pid ${child.pid}\\) for 300ms`))
    }))

  it.scopedLive("a write waits while another process holds the file, and succeeds once it lets go", () =>
    Effect.gen(function*() {
      const start = (id: string) =>
        Effect.flatMap(ResultsStore, (store) => store.startRun({ runId: runId(id), pipeline: "p", pipelinePath: "p", backend: "cpu" }))
      const dir = yield* makeTempDir
      const file = path.join(dir, "results.duckdb")
      yield* Effect.provide(start("r1"), ResultsStore.layer(file))
      const child = yield* holdLock(file)
      const write = yield* Effect.fork(Effect.provide(start("r2"), ResultsStore.layer(file)))
      yield* Effect.sleep("300 millis")
      child.kill()
      yield* Fiber.join(write)
      const runs = yield* Effect.provide(
        Effect.flatMap(ResultsStore, (store) => store.query("SELECT run_id FROM runs ORDER BY run_id")),
        ResultsStore.layer(file, { readOnly: true })
      )
      assert.deepStrictEqual(runs.rows, [["r1"], ["r2"]])
    }))

  it.scoped("two layers on one file in one process take turns", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir
      const file = path.join(dir, "results.duckdb")
      const a = yield* Layer.build(ResultsStore.layer(file))
      const b = yield* Layer.build(ResultsStore.layer(file, { readOnly: true }))
      yield* Effect.provide(recordRun("r1"), a)
      const runs = yield* Effect.provide(
        Effect.flatMap(ResultsStore, (store) => store.query("SELECT run_id FROM runs")),
        b
      )
      assert.deepStrictEqual(runs.rows, [["r1"]])
    }))

  it.scoped("a layout-1 store (a copy of the example rows per run) is migrated to one copy per cache key", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir
      const file = path.join(dir, "results.duckdb")
      // A store as layout 1 wrote it: two runs of one node, the second a cache hit with the same rows again.
      yield* oldStore(file, 1, async (c) => {
        await c.run(`CREATE TABLE examples (run_id VARCHAR NOT NULL, node_id VARCHAR NOT NULL, cache_key VARCHAR NOT NULL,
          split VARCHAR NOT NULL, example_id INTEGER NOT NULL, label INTEGER NOT NULL, subject VARCHAR, prediction INTEGER,
          confidence DOUBLE, entropy DOUBLE, loss DOUBLE, decision VARCHAR, reason VARCHAR)`)
        for (const run of ["r1", "r2"]) {
          await c.run(`INSERT INTO nodes VALUES ('${run}', 'eval', 'evaluate', 1, '${key("e")}', '{}', '{}', 'executed', 1, '{}', NULL)`)
          await c.run(`INSERT INTO examples SELECT '${run}', 'eval', '${key("e")}', 'test', i, i % 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM range(25) t(i)`)
        }
      })
      yield* Effect.gen(function*() {
        const store = yield* ResultsStore
        assert.deepStrictEqual((yield* store.query("SELECT count(*) FROM example_rows")).rows, [[25]])
        assert.deepStrictEqual((yield* store.query("SELECT run_id, count(*) FROM examples GROUP BY run_id ORDER BY run_id")).rows, [["r1", 25], ["r2", 25]])
        assert.deepStrictEqual((yield* store.query("SELECT max(version) FROM schema_version")).rows, [[4]])
      }).pipe(Effect.provide(ResultsStore.layer(file)))
    }))

  it.scoped("a layout-2 store (no samples) is migrated to one with generation_rows and the generations view", () =>
    Effect.gen(function*() {
      const dir = yield* makeTempDir
      const file = path.join(dir, "results.duckdb")
      yield* oldStore(file, 2, (c) =>
        c.run(`INSERT INTO nodes VALUES ('r1', 'gen', 'lm_generate', 1, '${key("g")}', '{}', '{}', 'executed', 1, '{}', NULL)`))
      yield* Effect.gen(function*() {
        const store = yield* ResultsStore
        assert.deepStrictEqual((yield* store.query("SELECT max(version) FROM schema_version")).rows, [[4]])
        assert.deepStrictEqual((yield* store.query("SELECT count(*) FROM generations")).rows, [[0]])
        yield* store.recordGenerations(key("g"), generationRows(3))
        assert.deepStrictEqual(
          (yield* store.query("SELECT run_id, node_id, prompt_id, sample FROM generations ORDER BY row_index")).rows,
          [["r1", "gen", "p0", 0], ["r1", "gen", "p0", 1], ["r1", "gen", "p1", 0]]
        )
        // A cache hit records the same key again: nothing is added.
        yield* store.recordGenerations(key("g"), generationRows(3))
        assert.deepStrictEqual((yield* store.query("SELECT count(*), count(teacher_nll) FROM generation_rows")).rows, [[3, 2]])
      }).pipe(Effect.provide(ResultsStore.layer(file)))
    }))
})
