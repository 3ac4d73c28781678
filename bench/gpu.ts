/**
 * `npx tsx bench/gpu.ts`: the time of one Adam step of a 784-1200-1200-10 MLP at batch 1024 on the
 * tfjs `webgpu` backend (Dawn through the `webgpu` package), against PyTorch on CUDA when a CUDA
 * build of torch is there, and the CPU paths (Distillery native, PyTorch cpu) for scale. Each runs in
 * its own process. Needs a GPU with a Vulkan (Linux), Metal or D3D12 driver; without one the webgpu
 * row says what was missing. Writes bench/results/gpu-<time>.json.
 *
 *   options: --steps N (timed steps, default 30)  --python /path/to/python3 (a CUDA torch; default
 *            /usr/bin/python3)  --no-cpu (skip the CPU rows)
 */
import * as tf from "@tensorflow/tfjs"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { BackendName } from "../src/backend/Backend.js"
import { backendInUse, initBackend } from "../src/backend/Backend.js"
import { decodeModelSpec } from "../src/models/ModelSpec.js"
import { buildModel } from "../src/models/Network.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const sizes = [784, 1200, 1200, 10] as const
const batch = 1024
const flopsPerStep = 6 * batch * (784 * 1200 + 1200 * 1200 + 1200 * 10)

interface StepResult {
  readonly config: string
  readonly backend?: string
  readonly msPerStep?: number
  readonly gflops?: number
  readonly peakRssMB?: number
  readonly error?: string
}

/** Child mode: times `steps` Adam steps on one backend and prints a StepResult as JSON. */
const child = async (backend: BackendName, steps: number): Promise<void> => {
  await initBackend(backend)
  const net = buildModel(decodeModelSpec({ type: "mlp", hidden: [1200, 1200] }), [784], 10, 1)
  const opt: tf.Optimizer = tf.train.adam(1e-3)
  const x = tf.randomUniform([batch, 784]) as tf.Tensor2D
  const labels = tf.oneHot(tf.randomUniform([batch], 0, 10, "int32") as tf.Tensor1D, 10)
  const step = () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(labels, net.forward(x, { training: true }).logits) as tf.Scalar,
        net.variables as Array<tf.Variable>
      )
      opt.applyGradients(grads)
      return value
    })
  // Warm-up: shader compilation and buffer pools on the GPU, JIT on the CPU.
  for (let i = 0; i < 5; i++) await step().data()
  const t0 = performance.now()
  let last: tf.Scalar | undefined
  for (let i = 0; i < steps; i++) {
    last?.dispose()
    last = step()
  }
  await last!.data() // waits for the queue to drain
  const ms = (performance.now() - t0) / steps
  last!.dispose()
  const result: StepResult = {
    config: `distillery ${backend}`,
    backend: backendInUse(),
    msPerStep: ms,
    gflops: flopsPerStep / ms / 1e6,
    peakRssMB: process.resourceUsage().maxRSS / 1024
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0) // Dawn's device keeps the loop alive
}

const runJson = (cmd: string, args: ReadonlyArray<string>, config: string): StepResult => {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 16 * 1024 * 1024 })
  const last = r.stdout?.trim().split("\n").pop() ?? ""
  try {
    return { ...(JSON.parse(last) as Omit<StepResult, "config">), config }
  } catch {
    const why = `${r.stderr ?? ""}${r.stdout ?? ""}`.trim().split("\n").filter((l) => !/^\s*at /.test(l))
    return { config, error: why.slice(-2).join(" | ") || `exit ${r.status}` }
  }
}

const main = async () => {
  const argv = process.argv.slice(2)
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`)
    return i >= 0 ? argv[i + 1] : undefined
  }
  const steps = Number(get("steps") ?? 30)
  if (argv[0] === "--child") {
    return child(argv[1] as BackendName, steps).catch((e: unknown) => {
      process.stdout.write(`${JSON.stringify({ error: e instanceof Error ? e.message : String(e) })}\n`)
      process.exit(1)
    })
  }
  const python = get("python") ?? "/usr/bin/python3"
  const self = fileURLToPath(import.meta.url)
  const node = (backend: string) =>
    runJson(process.execPath, ["--import", "tsx", self, "--child", backend, "--steps", String(steps)], `distillery ${backend}`)
  const torch = (device: string) =>
    runJson(python, [path.join(here, "torch_gpu.py"), device, String(steps)], `pytorch ${device}`)
  const rows: Array<StepResult> = [node("webgpu"), torch("cuda")]
  if (!argv.includes("--no-cpu")) rows.push(node("native"), torch("cpu"))
  console.log(`Adam step, MLP ${sizes.join("-")}, batch ${batch} (${(flopsPerStep / 1e9).toFixed(1)} GFLOP a step)\n`)
  for (const r of rows) {
    console.log(
      r.error !== undefined
        ? `${r.config.padEnd(22)} unavailable: ${r.error.slice(0, 200)}`
        : `${r.config.padEnd(22)} ${r.msPerStep!.toFixed(2).padStart(9)} ms/step ${r.gflops!.toFixed(1).padStart(8)} GFLOP/s ` +
            `${r.peakRssMB!.toFixed(0).padStart(6)} MB peak RSS  (${r.backend})`
    )
  }
  const dir = path.join(here, "results")
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `gpu-${new Date().toISOString().replace(/[:.]/g, "-")}.json`)
  fs.writeFileSync(file, JSON.stringify({ sizes, batch, flopsPerStep, steps, rows }, null, 2))
  console.log(`\nwritten to ${path.relative(process.cwd(), file)}`)
}

await main()
