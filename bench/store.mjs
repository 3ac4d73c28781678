#!/usr/bin/env node
/**
 * Several processes on one store, measured: `--runs` CLI runs of a small two-moons pipeline (each its
 * own seed, so each computes) and a sweep start at once on one empty store, while a reader in this
 * process asks results.duckdb a question every 100 ms, as `distillery query` does (open read-only,
 * one query, close; retried while a writer holds the file). Prints every process's exit code and
 * wall time, and the reader's latency (median, p90, max) and failures. Writes bench/results/store-*.json.
 *
 *   node bench/store.mjs [--runs 3] [--trials 6]
 */
import { DuckDBInstance } from "@duckdb/node-api"
import { spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const args = process.argv.slice(2)
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : fallback
}
const runs = Number(option("runs", "3"))
const trials = Number(option("trials", "6"))
const dir = mkdtempSync(path.join(os.tmpdir(), "distillery-store-bench-"))
const store = path.join(dir, "store")

const pipeline = (name, seed, sweep = "") => {
  const file = path.join(dir, `${name}.yaml`)
  writeFileSync(
    file,
    `name: ${name}
seed: ${seed}
nodes:
  - { id: moons, kind: dataset, params: { source: two_moons, examples: 400, noise: 0.2 } }
  - id: model
    kind: train
    inputs: { data: moons }
    params: { model: { type: mlp, hidden: [16] }, epochs: 20, batchSize: 32, optimizer: { type: adam, learningRate: 0.01 } }
  - { id: eval, kind: evaluate, inputs: { model: model, data: moons } }
${sweep}`
  )
  return file
}

const cliProcess = (label, verb, file) =>
  new Promise((resolve) => {
    const started = performance.now()
    const child = spawn(process.execPath, [path.join(root, "bin/distillery.js"), verb, file, "--store", store, "--backend", "cpu", "--workers", "0"], {
      cwd: root,
      env: { ...process.env, DISTILLERY_NO_REBUILD: "1", NO_COLOR: "1" },
      stdio: ["ignore", "ignore", "pipe"]
    })
    let stderr = ""
    child.stderr.on("data", (d) => (stderr += d))
    child.on("close", (code) => resolve({ label, code, seconds: (performance.now() - started) / 1000, stderr: code === 0 ? "" : stderr.slice(-400) }))
  })

/** One read as `distillery query` does it: read-only open, one query, close; a lock held by a writer is retried. */
const read = async () => {
  const started = performance.now()
  for (;;) {
    try {
      const instance = await DuckDBInstance.create(path.join(store, "results.duckdb"), { access_mode: "READ_ONLY" })
      try {
        const connection = await instance.connect()
        await connection.runAndReadAll("SELECT count(*) FROM metrics")
        connection.closeSync()
      } finally {
        instance.closeSync()
      }
      return performance.now() - started
    } catch (e) {
      const message = String(e)
      const busy = /lock|Could not set|does not exist|No such file/i.test(message)
      if (!busy || performance.now() - started > 120_000) throw e
      await new Promise((r) => setTimeout(r, 10))
    }
  }
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]

const main = async () => {
  mkdirSync(store, { recursive: true })
  const sweepFile = pipeline("bench-sweep", 1, `sweep:\n  seeds: ${trials}\n`)
  const processes = [
    ...Array.from({ length: runs }, (_, i) => cliProcess(`run ${i + 1}`, "run", pipeline(`bench-run-${i + 1}`, 100 + i))),
    cliProcess(`sweep (${trials} trials)`, "sweep", sweepFile)
  ]
  let writing = true
  const latencies = []
  const failures = []
  const reader = (async () => {
    while (writing) {
      try {
        latencies.push(await read())
      } catch (e) {
        failures.push(String(e).slice(0, 200))
      }
      await new Promise((r) => setTimeout(r, 100))
    }
  })()
  const started = performance.now()
  const done = await Promise.all(processes)
  writing = false
  await reader
  const wall = (performance.now() - started) / 1000
  const sorted = [...latencies].sort((a, b) => a - b)
  console.log(`${runs} runs and a ${trials}-trial sweep on one store, a reader every 100 ms (${wall.toFixed(1)} s in all)\n`)
  console.log("process              exit   seconds")
  for (const p of done) console.log(`${p.label.padEnd(20)} ${String(p.code).padStart(4)}   ${p.seconds.toFixed(1).padStart(7)}${p.stderr ? `\n  ${p.stderr}` : ""}`)
  console.log(`\nreads: ${latencies.length} succeeded, ${failures.length} failed`)
  if (sorted.length > 0) {
    console.log(`read latency: median ${quantile(sorted, 0.5).toFixed(0)} ms, p90 ${quantile(sorted, 0.9).toFixed(0)} ms, max ${sorted[sorted.length - 1].toFixed(0)} ms`)
  }
  const out = path.join(root, "bench/results")
  if (!existsSync(out)) mkdirSync(out, { recursive: true })
  const file = path.join(out, `store-${new Date().toISOString().replace(/[:.]/g, "-")}.json`)
  writeFileSync(file, JSON.stringify({ runs, trials, wall, processes: done, reads: latencies, failures }, null, 2))
  console.log(`\n${file}`)
  rmSync(dir, { recursive: true, force: true })
  if (done.some((p) => p.code !== 0) || failures.length > 0) process.exitCode = 1
}

await main()
