/**
 * `npm run bench`: training throughput of Distillery against plain tfjs and PyTorch, side by side in
 * one run. Each configuration trains the same model on the same MNIST digits (batch 128, Adam 1e-3)
 * in its own child process (bench/child.ts, bench/torch_train.py), which reports its wall time and
 * peak RSS. Prints a table of GFLOP/s (see bench/models.ts for the count), the ratio to PyTorch with 1
 * and 2 threads from the same run, and peak RSS; writes it all to bench/results/train-<time>.json.
 *
 *   npm run bench                                  all models, 8,000 digits, 3 epochs
 *   npm run bench -- --models mlp --epochs 2       one model
 *   options: --models mlp,student,teacher,cnn  --examples N  --epochs N  --slow-examples N (plain
 *            tfjs cpu / wasm as shipped train 1 epoch on this many, they are 10-100x slower)
 *            --configs a,b (names from the table)  --no-torch
 */
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { loadMnistDigits } from "../src/data/mnist.js"
import { makeRng, permutation } from "../src/domain/Random.js"
import type { ChildConfig, ChildResult } from "./child.js"
import { benchModels, findModel } from "./models.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const python = "/usr/bin/python3"

interface Args {
  readonly models: ReadonlyArray<string>
  readonly examples: number
  readonly epochs: number
  readonly slowExamples: number
  readonly configs: ReadonlyArray<string> | undefined
  readonly torch: boolean
}

const parseArgs = (argv: ReadonlyArray<string>): Args => {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`)
    return i >= 0 ? argv[i + 1] : undefined
  }
  const num = (name: string, fallback: number): number => {
    const v = get(name)
    if (v === undefined) return fallback
    const n = Number(v)
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} takes a positive integer, got ${v}`)
    return n
  }
  const models = (get("models") ?? benchModels.map((m) => m.name).join(",")).split(",")
  models.forEach(findModel)
  const configs = get("configs")?.split(",")
  return {
    models,
    examples: num("examples", 8000),
    epochs: num("epochs", 3),
    slowExamples: num("slow-examples", 2048),
    configs,
    torch: !argv.includes("--no-torch")
  }
}

interface Config {
  readonly name: string
  readonly kind: "tfjs" | "torch"
  readonly runner?: ChildConfig["runner"]
  readonly backend?: string
  readonly threads: number
  readonly slow?: boolean
}

const configs: ReadonlyArray<Config> = [
  { name: "pytorch 1 thread", kind: "torch", threads: 1 },
  { name: "pytorch 2 threads", kind: "torch", threads: 2 },
  { name: "distillery native, 2 threads", kind: "tfjs", runner: "distillery", backend: "native", threads: 2 },
  { name: "distillery native, 1 thread", kind: "tfjs", runner: "distillery", backend: "native", threads: 1 },
  { name: "distillery wasm (kernel fixes)", kind: "tfjs", runner: "distillery", backend: "wasm", threads: 1 },
  { name: "tfjs wasm as shipped (layers fit)", kind: "tfjs", runner: "layers", backend: "wasm", threads: 1, slow: true },
  { name: "tfjs cpu (layers fit)", kind: "tfjs", runner: "layers", backend: "cpu", threads: 1, slow: true }
]

const torchStatus = (): { ok: true; version: string } | { ok: false; why: string } => {
  if (!fs.existsSync(python)) return { ok: false, why: `${python} not found` }
  const r = spawnSync(python, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" })
  return r.status === 0 ? { ok: true, version: r.stdout.trim() } : { ok: false, why: "Debian's python3 has no torch" }
}

/** The first `n` digits of a seeded shuffle of the package's 10,000, written once as raw f32 x then i32 y. */
const writeData = (n: number): string => {
  const digits = Effect.runSync(loadMnistDigits)
  const order = permutation(digits.y.length, makeRng(1)).slice(0, n)
  const x = new Float32Array(n * 784)
  const y = new Int32Array(n)
  order.forEach((row, i) => {
    x.set(digits.x.subarray(row * 784, (row + 1) * 784), i * 784)
    y[i] = digits.y[row]!
  })
  const file = path.join(os.tmpdir(), `distillery-bench-mnist-${n}.bin`)
  fs.writeFileSync(file, Buffer.concat([Buffer.from(x.buffer), Buffer.from(y.buffer)]))
  return file
}

type Outcome = (ChildResult & { readonly error?: undefined }) | { readonly error: string }

const runChild = (c: Config, child: ChildConfig): Outcome => {
  const [cmd, args] =
    c.kind === "torch"
      ? [python, [path.join(here, "torch_train.py"), JSON.stringify(child)]]
      : [process.execPath, ["--import", "tsx", path.join(here, "child.ts"), JSON.stringify(child)]]
  const r = spawnSync(cmd, args, {
    encoding: "utf8",
    // PyTorch's threads are OpenBLAS's; its OpenMP pool stays at 1 (see torch_train.py).
    env: { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: String(c.threads) },
    maxBuffer: 64 * 1024 * 1024
  })
  const last = r.stdout.trim().split("\n").pop() ?? ""
  try {
    const parsed = JSON.parse(last) as Outcome
    if (parsed.error !== undefined || r.status === 0) return parsed
  } catch {
    // falls through to the exit status and stderr
  }
  return { error: `exit ${r.status}: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}` }
}

interface Row {
  readonly model: string
  readonly config: string
  readonly backend?: string
  readonly examples?: number
  readonly seconds?: number
  readonly examplesPerSecond?: number
  readonly gflops?: number
  readonly vsTorch1?: number
  readonly vsTorch2?: number
  readonly peakRssMB?: number
  readonly finalLoss?: number
  readonly error?: string
}

const fmt = (v: number | undefined, digits: number): string => (v === undefined ? "-" : v.toFixed(digits))

const printTable = (rows: ReadonlyArray<Row>): void => {
  const header = ["model", "configuration", "examples", "seconds", "examples/s", "GFLOP/s", "x torch 1t", "x torch 2t", "peak RSS MB", "loss"]
  const ok = rows.filter((r) => r.error === undefined)
  const lines = ok.map((r) => [
          r.model,
          r.config,
          String(r.examples),
          fmt(r.seconds, 2),
          fmt(r.examplesPerSecond, 0),
          fmt(r.gflops, 1),
          fmt(r.vsTorch1, 2),
          fmt(r.vsTorch2, 2),
          fmt(r.peakRssMB, 0),
          fmt(r.finalLoss, 4)
        ])
  const widths = header.map((h, i) => Math.max(h.length, ...[...lines, ...rows.map((r) => [r.model, r.config])].map((l) => (l[i] ?? "").length)))
  const show = (cells: ReadonlyArray<string>) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
  console.log(show(header))
  for (const r of rows) {
    const i = ok.indexOf(r)
    console.log(i >= 0 ? show(lines[i]!) : `${show([r.model, r.config])}  failed: ${r.error!.slice(0, 100)}`)
  }
}

const main = () => {
  const args = parseArgs(process.argv.slice(2))
  const torch = args.torch ? torchStatus() : { ok: false as const, why: "--no-torch" }
  if (!torch.ok) {
    console.log(
      `PyTorch reference skipped (${torch.why}). To compare: apt-get install python3-torch libopenblas0-pthread ` +
        `(Debian's torch, run with ${python}).`
    )
  }
  const dataFile = writeData(args.examples)
  const selected = configs.filter(
    (c) => (c.kind !== "torch" || torch.ok) && (args.configs === undefined || args.configs.some((name) => c.name.includes(name)))
  )
  console.log(
    `${os.cpus()[0]?.model ?? "cpu"} x ${os.cpus().length}, Node ${process.version}` +
      `${torch.ok ? `, torch ${torch.version}` : ""}; ${args.examples} MNIST digits, ${args.epochs} epochs, batch 128, Adam` +
      ` (plain tfjs cpu and wasm as shipped: 1 epoch of ${Math.min(args.slowExamples, args.examples)}, cnn 256)\n`
  )
  const rows: Array<Row> = []
  for (const modelName of args.models) {
    const model = findModel(modelName)
    const modelRows: Array<Row> = []
    for (const c of selected) {
      const examples = c.slow === true ? Math.min(args.slowExamples, model.slowExamples ?? args.slowExamples, args.examples) : args.examples
      const child: ChildConfig = {
        model: model.name,
        runner: c.runner ?? "distillery",
        backend: c.backend ?? "torch",
        threads: c.threads,
        examples,
        epochs: c.slow === true ? 1 : args.epochs,
        batchSize: 128,
        dataFile,
        totalExamples: args.examples
      }
      process.stderr.write(`  ${model.name}: ${c.name} ...`)
      const r = runChild(c, child)
      process.stderr.write(r.error === undefined ? ` ${r.seconds.toFixed(1)} s\n` : ` failed\n`)
      if (r.error !== undefined) {
        modelRows.push({ model: model.name, config: c.name, error: r.error })
        continue
      }
      const examplesPerSecond = r.examples / r.seconds
      modelRows.push({
        model: model.name,
        config: c.name,
        backend: r.backend,
        examples: r.examples,
        seconds: r.seconds,
        examplesPerSecond,
        gflops: (examplesPerSecond * model.flopsPerExample) / 1e9,
        peakRssMB: r.maxRssMB,
        finalLoss: r.finalLoss
      })
    }
    const ref = (name: string) => modelRows.find((r) => r.config === name)?.gflops
    const t1 = ref("pytorch 1 thread")
    const t2 = ref("pytorch 2 threads")
    for (const r of modelRows) {
      rows.push({
        ...r,
        ...(r.gflops !== undefined && t1 !== undefined ? { vsTorch1: r.gflops / t1 } : {}),
        ...(r.gflops !== undefined && t2 !== undefined ? { vsTorch2: r.gflops / t2 } : {})
      })
    }
  }
  console.log("")
  printTable(rows)
  const dir = path.join(here, "results")
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `train-${new Date().toISOString().replace(/[:.]/g, "-")}.json`)
  fs.writeFileSync(
    file,
    JSON.stringify(
      {
        command: `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim(),
        machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, node: process.version, torch: torch.ok ? torch.version : null },
        settings: { ...args, batchSize: 128, optimizer: "adam 1e-3" },
        models: Object.fromEntries(args.models.map((m) => [m, findModel(m)])),
        rows
      },
      null,
      2
    )
  )
  console.log(`\nwritten to ${path.relative(process.cwd(), file)}`)
  fs.rmSync(dataFile, { force: true })
}

main()
