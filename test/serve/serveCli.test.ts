/**
 * `distillery serve` as a user runs it: a child process serving a model that `distillery run` trained,
 * printing its URL, answering `/v1/models`, and stopping on SIGTERM.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { cli, spawnCli } from "../fixtures/cli.js"

const dir = mkdtempSync(join(tmpdir(), "distillery-serve-"))
const store = join(dir, "store")
const pipeline = join(dir, "lm.yaml")
afterAll(() => rmSync(dir, { recursive: true, force: true }))

writeFileSync(pipeline, `name: lm-serve
seed: 1
nodes:
  - { id: brown, kind: text, params: { source: brown, limit: 4 } }
  - { id: bytes, kind: tokenizer, params: { type: bytes } }
  - id: lm
    kind: lm_train
    inputs: { corpus: brown, tokenizer: bytes }
    params:
      model: { type: transformer, layers: 1, width: 16, heads: 2, context: 16 }
      sequenceLength: 16
      batchSize: 2
      steps: 2
`)

beforeAll(async () => {
  const run = await cli("run", pipeline, "--store", store, "--backend", "cpu", "--workers", "0", "--run-id", "serve-run")
  assert.strictEqual(run.code, 0, run.stderr)
})

describe("distillery serve", () => {
  it("prints its URL, answers /v1/models, and exits on SIGTERM", async () => {
    const child = spawnCli("serve", "serve-run", "lm", "--port", "0", "--store", store, "--backend", "cpu")
    let stdout = ""
    let stderr = ""
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()))
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString()
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)
        if (m !== null) resolve(m[1]!)
      })
      void exited.then((code) => reject(new Error(`serve exited (${code}) before listening: ${stdout}${stderr}`)))
    })
    try {
      const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> }
      assert.deepStrictEqual(models.data.map((m) => m.id), ["lm"])
      assert.include(stdout, "serving node 'lm' of run serve-run (lm-serve)")
    } finally {
      child.kill("SIGTERM")
    }
    // Interrupted by the signal: the server closes, and the exit code says it was interrupted.
    assert.strictEqual(await exited, 130)
    assert.notInclude(stderr, "    at ")
  })

  it("refuses a node that is not in the run, listing its nodes", async () => {
    const r = await cli("serve", "serve-run", "model", "--port", "0", "--store", store)
    assert.strictEqual(r.code, 2)
    assert.include(r.stderr, "its nodes are: 'brown', 'bytes' or 'lm'")
  })

  it("refuses a concurrency below 1 and a port outside 0-65535 before it loads anything", async () => {
    const zero = await cli("serve", "serve-run", "lm", "--concurrency", "0", "--store", store)
    assert.strictEqual(zero.code, 2)
    assert.include(zero.stderr, "--concurrency takes a whole number of at least 1")
    const port = await cli("serve", "serve-run", "lm", "--port", "70000", "--store", store)
    assert.strictEqual(port.code, 2)
    assert.include(port.stderr, "--port takes 0 (any free port) to 65535")
  })
})
