/**
 * The package as a user installs it: `npm pack`, the tarball installed into an empty folder, and
 * `npx distillery` run from there (validate, then a seconds-long pipeline). Slow (a whole npm install
 * from the local npm cache), so it is one test.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const exec = (command: string, args: ReadonlyArray<string>, cwd: string) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(command, [...args], { cwd, encoding: "utf8", maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: "1" } }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr })
    )
  )

describe("the packed package", () => {
  it("installs from its tarball into an empty folder and runs with npx", { timeout: 600_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "distillery-pack-"))
    // dist/ was built by the test setup; --ignore-scripts keeps pack from rebuilding it under the other tests.
    const pack = await exec("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], process.cwd())
    assert.strictEqual(pack.code, 0, pack.stderr)
    const [packed] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>
    const files = packed!.files.map((f) => f.path)
    assert.include(files, "bin/distillery.js")
    assert.include(files, "dist/bin.js")
    assert.include(files, "dist/worker.js")
    assert.isFalse(files.some((f) => f.startsWith("src/") || f.startsWith("test/")), "sources and tests stay out of the tarball")

    const app = join(dir, "app")
    mkdirSync(app)
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true }))
    const install = await exec("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", join(dir, packed!.filename)], app)
    assert.strictEqual(install.code, 0, install.stderr)

    const pipeline = join(app, "moons.yaml")
    writeFileSync(pipeline, readFileSync("pipelines/two-moons-kd.yaml", "utf8").replace(/epochs: \d+/g, "epochs: 2"))
    const validate = await exec("npx", ["--no-install", "distillery", "validate", "moons.yaml"], app)
    assert.strictEqual(validate.code, 0, validate.stderr)
    assert.include(validate.stdout, "valid (9 nodes)")
    const run = await exec("npx", ["--no-install", "distillery", "run", "moons.yaml", "--store", "store", "--workers", "0"], app)
    assert.strictEqual(run.code, 0, run.stderr)
    assert.match(run.stdout, /9 nodes, 9 executed, 0 cached/)
    assert.match(run.stdout, /eval_student\s+student\s+0\.\d+/)
  })
})
