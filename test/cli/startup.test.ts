/**
 * What starting a verb loads: `--help` and `validate` (every pipeline in pipelines/) must not load
 * tfjs, DuckDB or llama.cpp, which only computing verbs need (lazy imports, src/cli/shared.ts and
 * NodeKind's onRun). The modules a process loads are recorded by a `--import` hook.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { cli } from "../fixtures/cli.js"

const heavy = /@tensorflow|@duckdb|node-llama-cpp/
const nodeOptions = process.env["NODE_OPTIONS"]

/** Runs `distillery <args>` and returns its exit code and the heavy modules it loaded. */
const heavyModulesOf = async (...args: Array<string>) => {
  const log = join(mkdtempSync(join(tmpdir(), "distillery-imports-")), "imports.log")
  process.env["NODE_OPTIONS"] = `${nodeOptions ?? ""} --import ${pathToFileURL(resolve("test/fixtures/importLog.mjs")).href}`.trim()
  process.env["DISTILLERY_IMPORT_LOG"] = log
  const r = await cli(...args)
  const loaded = readFileSync(log, "utf8").split("\n").filter((url) => url !== "")
  return { code: r.code, stderr: r.stderr, loaded: loaded.length, heavy: loaded.filter((url) => heavy.test(url)) }
}

afterEach(() => {
  if (nodeOptions === undefined) delete process.env["NODE_OPTIONS"]
  else process.env["NODE_OPTIONS"] = nodeOptions
  delete process.env["DISTILLERY_IMPORT_LOG"]
})

describe("what a verb loads at start", () => {
  it("--help loads no tfjs, DuckDB or llama.cpp", async () => {
    const r = await heavyModulesOf("--help")
    assert.strictEqual(r.code, 0, r.stderr)
    assert.isAbove(r.loaded, 0, "the hook recorded nothing")
    assert.deepStrictEqual(r.heavy, [])
  })

  it("validate of every pipeline in pipelines/ loads none of them either", async () => {
    for (const file of readdirSync("pipelines").filter((f) => f.endsWith(".yaml"))) {
      const r = await heavyModulesOf("validate", join("pipelines", file))
      assert.strictEqual(r.code, 0, `${file}: ${r.stderr}`)
      assert.deepStrictEqual(r.heavy, [], file)
    }
  }, 120_000)
})
