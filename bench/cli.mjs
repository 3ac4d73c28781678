#!/usr/bin/env node
/**
 * How long the CLI takes before it does anything, as a user sees it: each command is run several
 * times as a whole process and the median wall time is printed, with the goals beside it.
 *
 *   node bench/cli.mjs [--runs 7] [--store bench/results/cli-store]
 *
 * The cached `npm start` needs the default pipeline computed in the store: when it is not, this script
 * runs it cold first (3-4 minutes on 2 cores) and reports the cached run as a share of that cold run.
 * Results also go to bench/results/cli-<timestamp>.json.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const args = process.argv.slice(2)
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : fallback
}
const runs = Number(option("runs", "7"))
const store = path.resolve(root, option("store", "bench/results/cli-store"))
const npm = process.platform === "win32" ? "npm.cmd" : "npm"

const time = (command, commandArgs) => {
  const started = performance.now()
  const r = spawnSync(command, commandArgs, { cwd: root, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } })
  const seconds = (performance.now() - started) / 1000
  if (r.status !== 0) throw new Error(`${command} ${commandArgs.join(" ")} exited ${r.status}:\n${r.stderr}`)
  return { seconds, stdout: r.stdout }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const measure = (label, command, commandArgs, goal) => {
  time(command, commandArgs) // warm-up: the file system cache, a first build of dist/
  const times = Array.from({ length: runs }, () => time(command, commandArgs).seconds)
  const row = { label, command: [command, ...commandArgs].join(" "), runs, median: median(times), min: Math.min(...times), max: Math.max(...times), goal }
  console.log(`${label.padEnd(34)} median ${row.median.toFixed(3)} s  (min ${row.min.toFixed(3)}, max ${row.max.toFixed(3)})  goal <= ${goal} s`)
  return row
}

const cli = path.join("bin", "distillery.js")
const rows = []
let cold
if (!existsSync(path.join(store, "results.duckdb"))) {
  console.log(`computing the default pipeline cold into ${path.relative(root, store)} (once; 3-4 minutes on 2 cores) ...`)
  cold = time(npm, ["start", "--", "--store", store]).seconds
  console.log(`cold npm start: ${cold.toFixed(1)} s`)
}
rows.push(measure("distillery --help", process.execPath, [cli, "--help"], 0.5))
rows.push(measure("distillery validate (default)", process.execPath, [cli, "validate", "pipelines/mnist-kd.yaml"], 1))
const cached = measure("npm start, every node cached", npm, ["start", "--", "--store", store], 1.5)
rows.push(cached)
if (!/0 executed/.test(time(npm, ["start", "--", "--store", store]).stdout)) throw new Error("the cached run executed nodes")
if (cold !== undefined) console.log(`cached npm start = ${((100 * cached.median) / cold).toFixed(2)}% of the cold run (goal <= 2%)`)

mkdirSync(path.join(root, "bench", "results"), { recursive: true })
const out = path.join(root, "bench", "results", `cli-${new Date().toISOString().replace(/[:.]/g, "-")}.json`)
writeFileSync(out, JSON.stringify({ node: process.version, runs, rows, coldSeconds: cold ?? null }, null, 2))
console.log(`wrote ${path.relative(root, out)}`)
