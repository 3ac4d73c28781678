/**
 * `distillery report` as a user runs it: a child process on a store holding a fake sweep and run
 * (written through the ResultsStore layer, then closed so the CLI can open it).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ResultsStore } from "../../src/store/ResultsStore.js"
import { recordFakeRun, recordFakeSweep, SWEEP_ID } from "./fixtures.js"
import { cli } from "../fixtures/cli.js"


const store = mkdtempSync(join(tmpdir(), "distillery-report-cli-"))

const seeded = Effect.runPromise(
  Effect.gen(function*() {
    yield* recordFakeRun({ runId: "run-alone", studentKey: "x", accuracy: 0.9 })
    yield* recordFakeSweep()
  }).pipe(Effect.provide(ResultsStore.layer(join(store, "results.duckdb"))))
)

describe("distillery report", () => {
  it("writes a sweep's report and a run's report", async () => {
    await seeded
    const out = join(store, "reports", "sweep.html")
    const sweep = await cli("report", SWEEP_ID, "--store", store, "--out", out, "-x", "temperature", "--group", "divergence")
    assert.strictEqual(sweep.code, 0, sweep.stderr)
    assert.include(sweep.stdout, `wrote ${out}: sweep ${SWEEP_ID}`)
    const html = readFileSync(out, "utf8")
    assert.include(html, 'data-chart="sweep-metric"')
    const long = await cli("report", SWEEP_ID, "--store", store, "--out", out, "--x-axis", "divergence", "--group", "none")
    assert.strictEqual(long.code, 0, long.stderr)
    const run = await cli("report", "run-al", "--store", store, "--out", join(store, "run.html"))
    assert.strictEqual(run.code, 0, run.stderr)
    assert.include(run.stdout, "run run-alone")
    assert.isTrue(existsSync(join(store, "run.html")))
  })

  it("an unknown id exits 4 listing recent ids; a bad option names the choices", async () => {
    await seeded
    const missing = await cli("report", "nope", "--store", store)
    assert.strictEqual(missing.code, 4)
    assert.include(missing.stderr, "no run or sweep 'nope'; recent runs: ")
    assert.include(missing.stderr, `recent sweeps: ${SWEEP_ID}`)
    assert.notInclude(missing.stderr, "    at ")
    const metric = await cli("report", SWEEP_ID, "--store", store, "--metric", "acuracy", "--out", join(store, "x.html"))
    assert.notStrictEqual(metric.code, 0)
    assert.include(metric.stderr, "did you mean 'accuracy'?")
    assert.isFalse(existsSync(join(store, "x.html")))
    const help = await cli("report", "--help")
    assert.strictEqual(help.code, 0, help.stderr)
    assert.include(help.stdout, "--metric")
  })
})
