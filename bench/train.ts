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
 *
 * Language models (bench/models.ts `benchLms`, batch 32 x 128 random tokens): a training step of
 * src/train/LanguageModel.ts `trainLanguageModel` (AdamW, clip 1) in tokens/s against the PyTorch twin
 * in bench/torch_train.py, then decoding with the KV cache (src/generation/Decode.ts): prefill and
 * per-token time by position, to show a step costs the same late in the context as early.
 *
 *   npm run bench -- --models lm-student,lm-teacher           both, 2 warm-up + 8 timed steps each
 *   options: --steps N  --warmup N  --no-generate
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
import type { BenchLm } from "./models.js"
import { allModelNames, findLm, findModel } from "./models.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const python = "/usr/bin/python3"

interface Args {
  readonly models: ReadonlyArray<string>
  readonly examples: number
  readonly epochs: number
  readonly slowExamples: number
  readonly configs: ReadonlyArray<string> | undefined
  readonly torch: boolean
  readonly steps: number
  readonly warmup: number
  readonly generate: boolean
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
  const models = (get("models") ?? allModelNames().join(",")).split(",")
  models.forEach((m) => findLm(m) ?? findModel(m))
  const configs = get("configs")?.split(",")
  return {
    models,
    examples: num("examples", 8000),
    epochs: num("epochs", 3),
    slowExamples: num("slow-examples", 2048),
    configs,
    torch: !argv.includes("--no-torch"),
    steps: num("steps", 8),
    warmup: num("warmup", 2),
    generate: !argv.includes("--no-generate")
  }
}

interface Config {
  readonly name: string
  readonly kind: "tfjs" | "torch"
  readonly runner?: ChildConfig["runner"]
  readonly backend?: string
  readonly threads: number
  readonly slow?: boolean
  /** Language models only: the configuration also runs for the transformer rows. */
  readonly lm?: boolean
}

const configs: ReadonlyArray<Config> = [
  { name: "pytorch 1 thread", kind: "torch", threads: 1, lm: true },
  { name: "pytorch 2 threads", kind: "torch", threads: 2, lm: true },
  { name: "distillery native, 2 threads", kind: "tfjs", runner: "distillery", backend: "native", threads: 2, lm: true },
  { name: "distillery native, 1 thread", kind: "tfjs", runner: "distillery", backend: "native", threads: 1, lm: true },
  { name: "distillery wasm (kernel fixes)", kind: "tfjs", runner: "distillery", backend: "wasm", threads: 1, lm: true },
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

/** Runs one child, with a progress line on stderr. */
const runLogged = (label: string, c: Config, child: ChildConfig): Outcome => {
  process.stderr.write(`  ${label}: ${c.name} ...`)
  const r = runChild(c, child)
  process.stderr.write(r.error === undefined ? ` ${r.seconds.toFixed(1)} s\n` : ` failed\n`)
  return r
}

/** Each row's throughput `rate` as a ratio to PyTorch's at 1 and 2 threads in the same run. */
const withRatios = <R extends { readonly config: string }>(rows: ReadonlyArray<R>, rate: (r: R) => number | undefined): Array<R & { vsTorch1?: number; vsTorch2?: number }> => {
  const ref = (name: string) => {
    const row = rows.find((r) => r.config === name)
    return row === undefined ? undefined : rate(row)
  }
  const [t1, t2] = [ref("pytorch 1 thread"), ref("pytorch 2 threads")]
  return rows.map((r) => {
    const v = rate(r)
    return {
      ...r,
      ...(v !== undefined && t1 !== undefined ? { vsTorch1: v / t1 } : {}),
      ...(v !== undefined && t2 !== undefined ? { vsTorch2: v / t2 } : {})
    }
  })
}

interface Row {
  readonly model: string
  readonly config: string
  readonly backend?: string
  /** Examples trained on; tokens for the language models (`lmRows`), and examplesPerSecond is tokens/s. */
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

/** One configuration's row: its throughput, with GFLOP/s at `flopsPerUnit` per example (or token), or why it failed. */
const measure = (model: string, c: Config, child: ChildConfig, flopsPerUnit: number): Row => {
  const r = runLogged(model, c, child)
  if (r.error !== undefined) return { model, config: c.name, error: r.error }
  const examplesPerSecond = r.examples / r.seconds
  return {
    model,
    config: c.name,
    backend: r.backend,
    examples: r.examples,
    seconds: r.seconds,
    examplesPerSecond,
    gflops: (examplesPerSecond * flopsPerUnit) / 1e9,
    peakRssMB: r.maxRssMB,
    finalLoss: r.finalLoss
  }
}

const fmt = (v: number | undefined, digits: number): string => (v === undefined ? "-" : v.toFixed(digits))

const printRows = (header: ReadonlyArray<string>, rows: ReadonlyArray<{ cells: ReadonlyArray<string> } | { name: ReadonlyArray<string>; error: string }>): void => {
  const all = rows.map((r) => ("cells" in r ? r.cells : r.name))
  const widths = header.map((h, i) => Math.max(h.length, ...all.map((l) => (l[i] ?? "").length)))
  const show = (cells: ReadonlyArray<string>) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
  console.log(show(header))
  for (const r of rows) console.log("cells" in r ? show(r.cells) : `${show(r.name)}  failed: ${r.error.slice(0, 100)}`)
}

/** The throughput table; `unit` names what `examples` counts (examples, or tokens for the language models). */
const printTable = (rows: ReadonlyArray<Row>, unit = "examples"): void =>
  printRows(
    ["model", "configuration", unit, "seconds", `${unit}/s`, "GFLOP/s", "x torch 1t", "x torch 2t", "peak RSS MB", "loss"],
    rows.map((r) =>
      r.error !== undefined
        ? { name: [r.model, r.config], error: r.error }
        : {
            cells: [
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
            ]
          }
    )
  )


interface GenerationRow {
  readonly model: string
  readonly config: string
  readonly prefillTokensPerSecond?: number
  readonly decodeTokensPerSecond?: number
  /** Mean ms per decoded token over positions [from, to]. */
  readonly msPerTokenByPosition?: ReadonlyArray<{ readonly from: number; readonly to: number; readonly ms: number }>
  readonly peakRssMB?: number
  readonly error?: string
}


const LM_BATCH = 32

/** The training rows of one language model: every selected configuration, ratios against PyTorch of the same run. */
const benchLmTraining = (m: BenchLm, selected: ReadonlyArray<Config>, args: Args): Array<Row> => {
  const rows: Array<Row> = []
  for (const c of selected) {
    const child: ChildConfig & { lmSpec: BenchLm["spec"] } = {
      model: m.name,
      runner: "lm",
      backend: c.backend ?? "torch",
      threads: c.threads,
      examples: 0,
      epochs: 1,
      batchSize: LM_BATCH,
      dataFile: "",
      totalExamples: 0,
      warmup: args.warmup,
      steps: args.steps,
      lmSpec: m.spec
    }
    rows.push(measure(m.name, c, child, m.flopsPerToken))
  }
  return withRatios(rows, (r) => r.examplesPerSecond)
}

const POSITION_BUCKET = 16

/** Decoding one row with the KV cache on the native backend at 1 thread: prefill rate, step rate, ms per token by position. */
const benchLmGeneration = (m: BenchLm, threads: number): GenerationRow => {
  const c: Config = { name: `distillery native, ${threads} thread${threads > 1 ? "s" : ""}`, kind: "tfjs", backend: "native", threads }
  const r = runLogged(`${m.name}: generation`, c, {
    model: m.name,
    runner: "generate",
    backend: "native",
    threads,
    examples: 0,
    epochs: 1,
    batchSize: 1,
    dataFile: "",
    totalExamples: 0
  })
  if (r.error !== undefined) return { model: m.name, config: c.name, error: r.error }
  const steps = r.stepMs ?? []
  const buckets: Array<{ from: number; to: number; ms: number }> = []
  // stepMs[i] is the step that feeds the token at position i + 1.
  for (let from = 1; from <= steps.length; from += POSITION_BUCKET) {
    const part = steps.slice(from - 1, from - 1 + POSITION_BUCKET)
    buckets.push({ from, to: from + part.length - 1, ms: part.reduce((a, b) => a + b, 0) / part.length })
  }
  return {
    model: m.name,
    config: c.name,
    prefillTokensPerSecond: r.prefillTokens! / r.prefillSeconds!,
    decodeTokensPerSecond: r.examples / r.seconds,
    msPerTokenByPosition: buckets,
    peakRssMB: r.maxRssMB
  }
}

const printLmTables = (training: ReadonlyArray<Row>, generation: ReadonlyArray<GenerationRow>): void => {
  if (training.length > 0) {
    console.log(`\nLanguage-model training, batch ${LM_BATCH} x 128 tokens, AdamW, clip 1 (one optimizer step per batch):`)
    printTable(training, "tokens")
  }
  if (generation.length > 0) {
    console.log(`\nGeneration with the KV cache, one row (prefill: a 64-token prompt; decode: positions 1-127, logits read back each step):`)
    const spans = generation.find((g) => g.msPerTokenByPosition !== undefined)?.msPerTokenByPosition ?? []
    printRows(
      ["model", "configuration", "prefill tok/s", "decode tok/s", ...spans.map((b) => `ms@${b.from}-${b.to}`), "peak RSS MB"],
      generation.map((g) =>
        g.error !== undefined
          ? { name: [g.model, g.config], error: g.error }
          : {
              cells: [
                g.model,
                g.config,
                fmt(g.prefillTokensPerSecond, 0),
                fmt(g.decodeTokensPerSecond, 0),
                ...g.msPerTokenByPosition!.map((b) => fmt(b.ms, 2)),
                fmt(g.peakRssMB, 0)
              ]
            }
      )
    )
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
  const lms = args.models.flatMap((name) => findLm(name) ?? [])
  const classifiers = args.models.filter((name) => findLm(name) === undefined)
  const dataFile = classifiers.length > 0 ? writeData(args.examples) : undefined
  const selected = configs.filter(
    (c) => (c.kind !== "torch" || torch.ok) && (args.configs === undefined || args.configs.some((name) => c.name.includes(name)))
  )
  console.log(
    `${os.cpus()[0]?.model ?? "cpu"} x ${os.cpus().length}, Node ${process.version}` +
      `${torch.ok ? `, torch ${torch.version}` : ""}` +
      (classifiers.length > 0
        ? `; ${args.examples} MNIST digits, ${args.epochs} epochs, batch 128, Adam` +
          ` (plain tfjs cpu and wasm as shipped: 1 epoch of ${Math.min(args.slowExamples, args.examples)}, cnn 256)`
        : "") +
      (lms.length > 0 ? `; language models: ${args.warmup} warm-up + ${args.steps} timed steps of ${LM_BATCH} x 128 random tokens` : "") +
      "\n"
  )
  const rows: Array<Row> = []
  for (const modelName of classifiers) {
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
        dataFile: dataFile!,
        totalExamples: args.examples
      }
      modelRows.push(measure(model.name, c, child, model.flopsPerExample))
    }
    rows.push(...withRatios(modelRows, (r) => r.gflops))
  }
  const lmRows = lms.flatMap((m) => benchLmTraining(m, selected.filter((c) => c.lm === true), args))
  const generationRows = args.generate ? lms.map((m) => benchLmGeneration(m, 1)) : []
  if (rows.length > 0) {
    console.log("")
    printTable(rows)
  }
  printLmTables(lmRows, generationRows)
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
        models: Object.fromEntries(args.models.map((m) => [m, findLm(m) ?? findModel(m)])),
        rows,
        lmRows,
        generationRows
      },
      null,
      2
    )
  )
  console.log(`\nwritten to ${path.relative(process.cwd(), file)}`)
  if (dataFile !== undefined) fs.rmSync(dataFile, { force: true })
}

main()
