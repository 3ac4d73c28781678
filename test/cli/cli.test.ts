/**
 * The CLI verbs end to end, as a user runs them: a real process on the two-moons pipeline in a
 * temporary store.
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { cli, spawnCli } from "../fixtures/cli.js"

/** A store holding two runs of the two-moons pipeline (the second all cache hits), made before any test reads it. */
const store = mkdtempSync(join(tmpdir(), "distillery-cli-"))
let firstRun: Awaited<ReturnType<typeof cli>>
let secondRun: Awaited<ReturnType<typeof cli>>

beforeAll(async () => {
  firstRun = await cli("run", "pipelines/two-moons-kd.yaml", "--store", store, "--backend", "cpu")
  secondRun = await cli("run", "pipelines/two-moons-kd.yaml", "--store", store, "--backend", "cpu")
})


describe("distillery CLI", () => {
  it("run computes every node, prints the results table, and a second run is all cache hits", async () => {
    const first = firstRun
    assert.strictEqual(first.code, 0, first.stderr)
    assert.match(first.stdout, /eval_teacher\s+teacher\s+0\.\d+/)
    assert.match(first.stdout, /9 nodes, 9 executed, 0 cached/)
    assert.include(first.stderr, "▶ teacher (train)")
    const second = secondRun
    assert.strictEqual(second.code, 0, second.stderr)
    assert.match(second.stdout, /9 nodes, 0 executed, 9 cached/)
    // Cached results are the same results.
    const table = (s: string) => s.split("\n").filter((l) => l.startsWith("eval_")).map((l) => l.split(/\s+/).slice(0, 4).join(" "))
    assert.deepStrictEqual(table(second.stdout), table(first.stdout))
    // The first run readied the cpu backend; the second computed nothing and loaded none.
    const backends = await cli("query", "SELECT backend FROM runs ORDER BY started_at", "--store", store, "--format", "csv")
    assert.deepStrictEqual(backends.stdout.trim().split(/\r?\n/).slice(1), ["cpu", "none"])
  })

  it("query answers SQL as a table, CSV or JSON", async () => {
    const sql = "SELECT node_id, status FROM nodes WHERE kind = 'evaluate' ORDER BY started_at, node_id LIMIT 3"
    const table = await cli("query", sql, "--store", store)
    assert.strictEqual(table.code, 0, table.stderr)
    assert.match(table.stdout, /node_id\s+status/)
    const csv = await cli("query", "SELECT count(*) AS n FROM runs", "--store", store, "--format", "csv")
    assert.strictEqual(csv.stdout.trim().replace(/\r/g, ""), "n\n2")
    const json = await cli("query", "SELECT DISTINCT split FROM examples WHERE decision IS NOT NULL", "--store", store, "--format", "json")
    assert.deepStrictEqual(JSON.parse(json.stdout), [{ split: "train" }])
    const bad = await cli("query", "SELECT * FROM runz", "--store", store)
    assert.strictEqual(bad.code, 4)
    assert.include(bad.stderr, "runz")
    assert.notInclude(bad.stderr, "    at ")
  })

  it("ls lists runs and show shows one", async () => {
    const ls = await cli("ls", "--store", store)
    assert.strictEqual(ls.code, 0, ls.stderr)
    assert.match(ls.stdout, /two-moons-kd\s+succeeded/)
    const show = await cli("show", "last", "--store", store)
    assert.strictEqual(show.code, 0, show.stderr)
    assert.match(show.stdout, /eval_student\s+evaluate\s+cached/)
    assert.include(show.stdout, "final metrics")
    const missing = await cli("show", "nope", "--store", store)
    assert.strictEqual(missing.code, 4)
    assert.include(missing.stderr, "no run or sweep 'nope'; recent runs:")
  })

  it("validate and graph describe a pipeline without running it", async () => {
    const v = await cli("validate", "pipelines/mnist-kd.yaml")
    assert.strictEqual(v.code, 0, v.stderr)
    assert.include(v.stdout, "valid (8 nodes)")
    const g = await cli("graph", "pipelines/mnist-kd.yaml")
    assert.strictEqual(g.code, 0, g.stderr)
    assert.include(g.stdout, "flowchart LR")
    assert.include(g.stdout, "teacher -->|model → model| teacher_outputs")
  })

  it("bad input exits 2 with file:line and the valid choices, never a stack trace", async () => {
    const dir = mkdtempSync(join(tmpdir(), "distillery-bad-"))
    const file = join(dir, "bad.yaml")
    writeFileSync(file, "name: bad\nnodes:\n  - id: data\n    kind: datset\n")
    const r = await cli("run", file, "--store", store)
    assert.strictEqual(r.code, 2)
    assert.include(r.stderr, `${file}:4:5: node 'data': unknown kind 'datset' (did you mean 'dataset'?)`)
    assert.notInclude(r.stderr, "    at ")
    // Usage errors: @effect/cli names the valid choices; exit 2 with nothing else printed.
    const backend = await cli("run", "pipelines/two-moons-kd.yaml", "--backend", "gpu", "--store", store)
    assert.strictEqual(backend.code, 2)
    assert.include(backend.stderr + backend.stdout, "wasm, native, cpu, tensorflow, webgpu, auto")
    assert.notInclude(backend.stderr, "[object Object]")
    const runId = await cli("run", "pipelines/two-moons-kd.yaml", "--run-id", "../../outside", "--store", store)
    assert.strictEqual(runId.code, 2)
    assert.include(runId.stderr + runId.stdout, "an id is letters, digits")
    const missing = await cli("validate", join(dir, "nope.yaml"))
    assert.strictEqual(missing.code, 2)
    assert.include(missing.stderr, "nope.yaml: no such file")
  })

  it("a --run-id the store already holds is refused (exit 2), not a database stack trace", async () => {
    const first = await cli("run", "pipelines/two-moons-kd.yaml", "--run-id", "taken-id", "--store", store, "--backend", "cpu", "--workers", "0")
    assert.strictEqual(first.code, 0, first.stderr)
    const again = await cli("run", "pipelines/two-moons-kd.yaml", "--run-id", "taken-id", "--store", store, "--backend", "cpu", "--workers", "0")
    assert.strictEqual(again.code, 2)
    assert.include(again.stderr, "the store already holds a run 'taken-id' (succeeded); give another --run-id")
    assert.notInclude(again.stderr, "    at ")
  })

  it("--help works on every verb", async () => {
    for (const verb of ["run", "sweep", "query", "validate", "graph", "ls", "show", "explain", "export", "gc", "report", "export-model", "serve", "verify", "schema", "init"]) {
      const r = await cli(verb, "--help")
      assert.strictEqual(r.code, 0, `${verb}: ${r.stderr}`)
      assert.include(r.stdout, verb)
    }
  })

  it("Ctrl-C stops a run cleanly (exit 130, run marked interrupted) and the next run resumes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "distillery-int-"))
    const file = join(dir, "long.yaml")
    writeFileSync(
      file,
      `name: long
nodes:
  - { id: data, kind: dataset, params: { source: two_moons, examples: 400 } }
  - { id: quick, kind: train, inputs: { data: data }, params: { model: { type: mlp, hidden: [4] }, epochs: 2 } }
  - { id: long, kind: train, inputs: { data: data }, params: { model: { type: mlp, hidden: [64] }, epochs: 5000 } }
`
    )
    const intStore = join(dir, "store")
    const child = spawnCli("run", file, "--store", intStore, "--backend", "cpu", "--concurrency", "1")
    let stderr = ""
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString()
        // Interrupt once the long node is under way.
        if (/long\s+epoch \d+/.test(stderr) && !child.killed) child.kill("SIGINT")
      })
      child.on("exit", (c) => resolve(c))
    })
    assert.strictEqual(code, 130, stderr)
    const status = await cli("query", "SELECT status FROM runs", "--store", intStore, "--format", "csv")
    assert.strictEqual(status.stdout.trim().split(/\r?\n/)[1], "interrupted")
    const nodes = await cli("query", "SELECT node_id FROM nodes ORDER BY node_id", "--store", intStore, "--format", "csv")
    assert.deepStrictEqual(nodes.stdout.trim().split(/\r?\n/).slice(1), ["data", "quick"])
  })
})
