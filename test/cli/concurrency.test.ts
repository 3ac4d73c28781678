/**
 * Several `distillery` processes on one store at once: runs of different pipelines side by side, a
 * query while a run writes, two runs of one pipeline computing each node once, and runs and a sweep
 * killed (SIGKILL) at seeded moments that resume to the results of an uninterrupted run.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, assert, describe, it } from "vitest"
import { cli, spawnCli } from "../fixtures/cli.js"

const root = fs.mkdtempSync(path.join(os.tmpdir(), "distillery-concurrency-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

/** A seconds-long pipeline: a dataset, one small model, its evaluation. */
const tinyPipeline = (name: string, seed: number): string => {
  const file = path.join(root, `${name}.yaml`)
  fs.writeFileSync(
    file,
    `name: ${name}
seed: ${seed}
nodes:
  - id: moons
    kind: dataset
    params: { source: two_moons, examples: 200, noise: 0.2 }
  - id: model
    kind: train
    inputs: { data: moons }
    params: { model: { type: mlp, hidden: [8] }, epochs: 5, batchSize: 32, optimizer: { type: adam, learningRate: 0.01 } }
  - id: eval
    kind: evaluate
    inputs: { model: model, data: moons }
`
  )
  return file
}

const storeDir = (name: string) => path.join(root, name)

const run = (pipeline: string, store: string) => cli("run", pipeline, "--store", store, "--backend", "cpu", "--workers", "0")

const queryJson = async (store: string, sql: string): Promise<Array<Record<string, unknown>>> => {
  const r = await cli("query", sql, "--store", store, "--format", "json")
  assert.strictEqual(r.code, 0, r.stderr)
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>
}

const exited = (child: ReturnType<typeof spawnCli>) =>
  new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)))

/** mulberry32: the kill moments are the same on every run of the test. */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** The evaluate rows of `run`'s results table, less the last column (latency: a timing, never the same twice). */
const metricsTable = (stdout: string) => stdout.split("\n").filter((l) => /^eval_/.test(l)).map((l) => l.replace(/\s+\S+$/, "")).sort()

describe("processes sharing one store", () => {
  it("two runs of different pipelines at once both succeed", async () => {
    const store = storeDir("different")
    const [a, b] = await Promise.all([run(tinyPipeline("moons-a", 1), store), run(tinyPipeline("moons-b", 2), store)])
    assert.strictEqual(a.code, 0, a.stderr)
    assert.strictEqual(b.code, 0, b.stderr)
    const runs = await queryJson(store, "SELECT pipeline, status FROM runs ORDER BY pipeline")
    assert.deepStrictEqual(runs, [{ pipeline: "moons-a", status: "succeeded" }, { pipeline: "moons-b", status: "succeeded" }])
  }, 120_000)

  it("query, show, report and export succeed while a run writes", async () => {
    const store = storeDir("reading")
    // The store holds a run before the second starts writing to it.
    assert.strictEqual((await run(tinyPipeline("moons-c", 3), store)).code, 0)
    const [{ run_id: first }] = await queryJson(store, "SELECT run_id FROM runs")
    const child = spawnCli("run", "pipelines/two-moons-kd.yaml", "--store", store, "--backend", "cpu", "--workers", "0")
    const done = exited(child)
    let finished = false
    void done.then(() => (finished = true))
    const readers: ReadonlyArray<ReadonlyArray<string>> = [
      ["query", "SELECT count(*) AS n FROM nodes"],
      ["show", String(first)],
      ["report", String(first), "--out", path.join(store, "report.html")],
      ["export", String(first), "--out", path.join(store, "export")]
    ]
    let reads = 0
    while (!finished) {
      const r = await cli(...readers[reads % readers.length]!, "--store", store)
      assert.strictEqual(r.code, 0, r.stderr)
      reads++
    }
    assert.strictEqual(await done, 0)
    assert.isAbove(reads, 0)
  }, 120_000)

  it("two runs of one pipeline at once compute each node once", async () => {
    const store = storeDir("same")
    const pipeline = tinyPipeline("moons-d", 4)
    const [a, b] = await Promise.all([run(pipeline, store), run(pipeline, store)])
    assert.strictEqual(a.code, 0, a.stderr)
    assert.strictEqual(b.code, 0, b.stderr)
    const executed = await queryJson(
      store,
      "SELECT node_id, count(*) FILTER (status = 'executed') AS executed, count(*) AS runs FROM nodes GROUP BY node_id ORDER BY node_id"
    )
    assert.deepStrictEqual(executed, [
      { node_id: "eval", executed: 1, runs: 2 },
      { node_id: "model", executed: 1, runs: 2 },
      { node_id: "moons", executed: 1, runs: 2 }
    ])
    assert.deepStrictEqual(fs.readdirSync(path.join(store, "claims")), [])
  }, 120_000)

  it("a run killed (SIGKILL) at seeded moments resumes to the results of an uninterrupted run", async () => {
    const pipeline = "pipelines/two-moons-kd.yaml"
    const reference = await run(pipeline, storeDir("reference"))
    assert.strictEqual(reference.code, 0, reference.stderr)
    const store = storeDir("killed")
    const random = seeded(13)
    for (let kill = 0; kill < 3; kill++) {
      const child = spawnCli("run", pipeline, "--store", store, "--backend", "cpu", "--workers", "0")
      const done = exited(child)
      // After the CLI has started (about 1 s), somewhere in the nodes.
      const after = 1000 + Math.floor(random() * 3000)
      await new Promise((resolve) => setTimeout(resolve, after))
      child.kill("SIGKILL")
      await done
    }
    const resumed = await run(pipeline, store)
    assert.strictEqual(resumed.code, 0, resumed.stderr)
    assert.deepStrictEqual(metricsTable(resumed.stdout), metricsTable(reference.stdout))
    // Nothing corrupt: the only findings are the killed runs, left `running`, which --repair marks interrupted.
    const verify = await cli("verify", "--store", store)
    const findings = verify.stdout.split("\n").filter((l) => /^[a-z][a-z ]+  /.test(l) && !l.startsWith("finding"))
    assert.isAtMost(findings.length, 3, verify.stdout)
    for (const f of findings) assert.match(f, /^run left running/, verify.stdout)
    assert.strictEqual((await cli("verify", "--repair", "--store", store)).code, 0)
    assert.strictEqual((await cli("verify", "--store", store)).code, 0)
    // Every result row names a key whose artifact is stored.
    const keys = await queryJson(store, "SELECT DISTINCT cache_key FROM nodes WHERE status <> 'failed'")
    for (const { cache_key } of keys) {
      const meta = JSON.parse(fs.readFileSync(path.join(store, "keys", `${String(cache_key)}.json`), "utf8")) as { artifactId: string }
      assert.isTrue(fs.existsSync(path.join(store, "artifacts", meta.artifactId.slice(0, 2), meta.artifactId)))
    }
  }, 180_000)

  it("a sweep killed (SIGKILL) at seeded moments resumes to the results of an uninterrupted sweep", async () => {
    const file = path.join(root, "sweep-moons.yaml")
    fs.writeFileSync(file, fs.readFileSync(tinyPipeline("sweep-moons", 1), "utf8") + `sweep:
  grid:
    model.params.optimizer.learningRate: [0.01, 0.03]
  seeds: 3
`)
    const sweep = (store: string) => cli("sweep", file, "--store", store, "--backend", "cpu", "--workers", "0")
    // Final metrics per (learning rate, seed) of the newest finished sweep; latency is a timing.
    const results = (store: string) =>
      queryJson(
        store,
        `SELECT t.seed, CAST(t.params AS VARCHAR) AS params, m.name, m.value FROM metrics m JOIN sweep_trials t ON t.run_id = m.run_id
         WHERE m.node_id = 'eval' AND m.step IS NULL AND m.name NOT LIKE '%latency%'
           AND t.sweep_id = (SELECT sweep_id FROM sweeps WHERE status = 'succeeded' ORDER BY started_at DESC LIMIT 1)
         ORDER BY 1, 2, 3`
      )
    const reference = storeDir("sweep-reference")
    assert.strictEqual((await sweep(reference)).code, 0)
    const store = storeDir("sweep-killed")
    const random = seeded(29)
    for (let kill = 0; kill < 2; kill++) {
      const child = spawnCli("sweep", file, "--store", store, "--backend", "cpu", "--workers", "0")
      const done = exited(child)
      await new Promise((resolve) => setTimeout(resolve, 1000 + Math.floor(random() * 3000)))
      child.kill("SIGKILL")
      await done
    }
    const resumed = await sweep(store)
    assert.strictEqual(resumed.code, 0, resumed.stderr)
    const expected = await results(reference)
    assert.strictEqual(expected.length > 0, true)
    assert.deepStrictEqual(await results(store), expected)
    // Nothing corrupt: only sweeps and runs left running by the kills, which --repair marks interrupted.
    assert.strictEqual((await cli("verify", "--repair", "--store", store)).code, 0)
    assert.strictEqual((await cli("verify", "--store", store)).code, 0)
  }, 180_000)
})
