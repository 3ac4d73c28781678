/**
 * `npx tsx bench/gpu.ts`: the time of one Adam step of a 784-1200-1200-10 MLP at batch 1024 on the
 * tfjs `webgpu` backend (Dawn through the `webgpu` package), with Distillery's optimizer (one fused
 * dispatch per variable, src/backend/webgpu/Adam.ts) and with tfjs's own Adam, against PyTorch on CUDA
 * when a CUDA build of torch is there, and the CPU paths (Distillery native, PyTorch cpu) for scale.
 * Each runs in its own process. For the webgpu rows it also prints the dispatches per step and the
 * time JS spends recording a step ("issue"): a fixed cost per step that no GPU hides, and that can be
 * measured without one (--software). The "fused" row is src/backend/webgpu/FusedMlp.ts: the whole
 * step in our own WGSL kernels, tfjs bypassed, timed here (`timeFusedMlpStep`). Needs a GPU with a
 * Vulkan (Linux), Metal or D3D12 driver; without one the webgpu rows say what was missing. Writes bench/results/gpu-<time>.json.
 *
 *   options: --steps N (timed steps, default 30)  --batch N (default 1024)  --hidden 1200,1200
 *            --python /path/to/python3 (a CUDA torch; default /usr/bin/python3)  --no-cpu (skip the
 *            CPU rows)  --software (accept a software adapter such as Chromium's SwiftShader, added
 *            to the Vulkan drivers; its step times mean nothing, its issue times and counts do)
 */
import * as tf from "@tensorflow/tfjs"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import type { BackendName } from "../src/backend/Backend.js"
import { backendInUse, initBackend } from "../src/backend/Backend.js"
import type { StepOptimizer } from "../src/backend/Adam.js"
import { tfjsAdam } from "../src/backend/Adam.js"
import { addSoftwareVulkanDriver } from "../src/backend/WebGpu.js"
import { buildFusedMlp } from "../src/backend/webgpu/FusedMlp.js"
import { decodeModelSpec } from "../src/models/ModelSpec.js"
import { buildModel, networkWeights } from "../src/models/Network.js"
import type { TrainOptions } from "../src/train/Contract.js"
import { makeOptimizer } from "../src/train/Optimizer.js"
import { train } from "../src/train/Trainer.js"
import { objectiveLoss, ObjectiveSpec } from "../src/losses/Objective.js"
import { makeRng, permutation } from "../src/domain/Random.js"
import { Schema } from "effect"

const here = path.dirname(fileURLToPath(import.meta.url))
const argv = process.argv.slice(2)
const option = (name: string) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : undefined
}
const hidden = (option("hidden") ?? "1200,1200").split(",").map(Number)
const sizes = [784, ...hidden, 10]
const batch = Number(option("batch") ?? 1024)
const flopsPerStep = 6 * batch * sizes.slice(1).reduce((sum, d, i) => sum + sizes[i]! * d, 0)

interface StepResult {
  readonly config: string
  readonly backend?: string
  readonly msPerStep?: number
  /** Time JS spent recording a step, the GPU not waited for. */
  readonly issueMsPerStep?: number
  readonly dispatchesPerStep?: number
  readonly gflops?: number
  readonly peakRssMB?: number
  readonly error?: string
}

/** Counts compute dispatches by wrapping the WebGPU pass encoder's method (webgpu only). */
const countDispatches = (): (() => number) => {
  const encoder = (globalThis as unknown as { GPUComputePassEncoder?: { prototype: Record<string, unknown> } }).GPUComputePassEncoder
  if (encoder === undefined) return () => Number.NaN
  const proto = encoder.prototype as { dispatchWorkgroups: (...a: Array<number>) => void }
  const original = proto.dispatchWorkgroups
  let count = 0
  proto.dispatchWorkgroups = function (this: unknown, ...a: Array<number>) {
    count++
    return original.apply(this, a)
  }
  return () => count
}

interface FusedStepTiming {
  readonly msPerStep: number
  /** Time JS spent recording and submitting a step, the GPU not waited for. */
  readonly issueMsPerStep: number
  readonly dispatchesPerStep: number
}

/**
 * Times `steps` fused steps (CE loss, Adam) of an MLP on random data of one batch, on the active
 * webgpu backend, after 5 warm-up steps.
 */
const timeFusedMlpStep = async (o: {
  readonly hidden: ReadonlyArray<number>
  readonly inputSize: number
  readonly numClasses: number
  readonly batchSize: number
  readonly steps: number
}): Promise<FusedStepTiming> => {
  const rng = makeRng(1)
  const b = o.batchSize
  const net = buildModel(decodeModelSpec({ type: "mlp", hidden: [...o.hidden] }), [o.inputSize], o.numClasses, 1)
  const initial = await networkWeights(net).finally(() => net.dispose())
  const fused = await buildFusedMlp({
    sizes: [o.inputSize, ...o.hidden, o.numClasses],
    batchSize: b,
    dropout: 0,
    loss: { kl: 0, ce: 1, temperature: 1 },
    adam: { learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
    train: {
      x: Float32Array.from({ length: b * o.inputSize }, () => rng.next()),
      y: Int32Array.from({ length: b }, () => rng.int(o.numClasses))
    },
    initial: initial.map((w) => w.values)
  })
  try {
    fused.beginEpoch(permutation(b, rng))
    let t = 0
    for (let i = 0; i < 5; i++) fused.step(0, b, i, ++t)
    await fused.idle()
    let issue = 0
    const t0 = performance.now()
    for (let i = 0; i < o.steps; i++) {
      const s0 = performance.now()
      fused.step(0, b, i, ++t)
      issue += performance.now() - s0
    }
    await fused.idle()
    return { msPerStep: (performance.now() - t0) / o.steps, issueMsPerStep: issue / o.steps, dispatchesPerStep: fused.dispatchesPerStep }
  } finally {
    await fused.idle()
    fused.destroy()
  }
}

/**
 * Child mode: times `steps` Adam steps on one backend and prints a StepResult as JSON. `optimizer`:
 * "distillery" is what the train node uses on that backend, "tfjs" tfjs's AdamOptimizer.
 */
const child = async (backend: BackendName, steps: number, optimizer: "distillery" | "tfjs" | "fused"): Promise<void> => {
  await initBackend(backend)
  if (optimizer === "fused") {
    const dispatched = countDispatches()
    const timing = await timeFusedMlpStep({ hidden, inputSize: 784, numClasses: 10, batchSize: batch, steps })
    const counted = dispatched() / (steps + 5)
    const result: StepResult = {
      config: "distillery webgpu fused MLP step",
      backend: backendInUse(),
      msPerStep: timing.msPerStep,
      issueMsPerStep: timing.issueMsPerStep,
      dispatchesPerStep: Number.isNaN(counted) ? timing.dispatchesPerStep : counted,
      gflops: flopsPerStep / timing.msPerStep / 1e6,
      peakRssMB: process.resourceUsage().maxRSS / 1024
    }
    process.stdout.write(`${JSON.stringify(result)}\n`)
    process.exit(0)
  }
  const net = buildModel(decodeModelSpec({ type: "mlp", hidden }), [784], 10, 1)
  const opt: StepOptimizer =
    optimizer === "tfjs" ? tfjsAdam({ learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 }) : makeOptimizer({ type: "adam", learningRate: 1e-3 })
  const dispatched = countDispatches()
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
  const d0 = dispatched()
  const t0 = performance.now()
  let issue = 0
  let last: tf.Scalar | undefined
  for (let i = 0; i < steps; i++) {
    last?.dispose()
    const s0 = performance.now()
    last = step()
    issue += performance.now() - s0
  }
  const dispatches = (dispatched() - d0) / steps
  await last!.data() // waits for the queue to drain
  const ms = (performance.now() - t0) / steps
  last!.dispose()
  const result: StepResult = {
    config: `distillery ${backend}`,
    backend: backendInUse(),
    msPerStep: ms,
    ...(Number.isNaN(dispatches) ? {} : { issueMsPerStep: issue / steps, dispatchesPerStep: dispatches }),
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

/**
 * Child mode "check": the fused step against the tfjs path on the same seed (a 784-64-32-10 MLP, 3
 * epochs of 1,024 random rows with teacher logits and forward KL), so a GPU's numbers come with proof
 * that the fused kernels compute the same training there. Prints the largest weight difference and
 * the largest relative difference of the epoch losses.
 */
const check = async (): Promise<void> => {
  await initBackend("webgpu")
  const rng = makeRng(5)
  const n = 1024
  const objective = Schema.decodeSync(ObjectiveSpec)({ divergence: "forward_kl", temperature: 4, alpha: 0.7 })
  const o: TrainOptions = {
    spec: decodeModelSpec({ type: "mlp", hidden: [64, 32] }),
    featureShape: [784],
    numClasses: 10,
    train: { x: Float32Array.from({ length: n * 784 }, () => rng.next()), y: Int32Array.from({ length: n }, () => rng.int(10)) },
    teacher: { logits: Float32Array.from({ length: n * 10 }, () => 3 * rng.normal()) },
    objective,
    loss: (s, y, t) => objectiveLoss(objective, s, y, t),
    optimizer: { type: "adam", learningRate: 1e-3 },
    batchSize: 128,
    epochs: 3,
    seed: 1,
    checkpoint: "last"
  }
  const fused = await train(o)
  process.env["DISTILLERY_WEBGPU_FUSED"] = "0"
  const plain = await train(o)
  let weight = 0
  fused.weights.forEach((w, i) => w.values.forEach((v, j) => (weight = Math.max(weight, Math.abs(v - plain.weights[i]!.values[j]!)))))
  const loss = Math.max(...fused.history.map((h, i) => Math.abs(h.trainLoss - plain.history[i]!.trainLoss) / Math.abs(plain.history[i]!.trainLoss)))
  process.stdout.write(`${JSON.stringify({ maxWeightDifference: weight, maxRelativeLossDifference: loss })}\n`)
  process.exit(0)
}

const main = async () => {
  const steps = Number(option("steps") ?? 30)
  if (argv.includes("--software")) addSoftwareVulkanDriver()
  if (argv[0] === "--child" && argv[1] === "check") {
    return check().catch((e: unknown) => {
      process.stdout.write(`${JSON.stringify({ error: e instanceof Error ? e.message : String(e) })}\n`)
      process.exit(1)
    })
  }
  if (argv[0] === "--child") {
    const optimizer = argv[2] === "tfjs" || argv[2] === "fused" ? argv[2] : "distillery"
    return child(argv[1] as BackendName, steps, optimizer).catch((e: unknown) => {
      process.stdout.write(`${JSON.stringify({ error: e instanceof Error ? e.message : String(e) })}\n`)
      process.exit(1)
    })
  }
  const python = option("python") ?? "/usr/bin/python3"
  const self = fileURLToPath(import.meta.url)
  // Run as TypeScript through tsx, or as the bundle bench/pack-gpu.mjs makes for machines without Node.
  const loader = self.endsWith(".ts") ? ["--import", "tsx"] : []
  const passOn = ["--steps", String(steps), "--batch", String(batch), "--hidden", hidden.join(","), ...(argv.includes("--software") ? ["--software"] : [])]
  const node = (backend: string, optimizer: "distillery" | "tfjs" | "fused" = "distillery") =>
    runJson(
      process.execPath,
      [...loader, self, "--child", backend, optimizer, ...passOn],
      optimizer === "tfjs" ? `tfjs ${backend} (tfjs Adam)` : optimizer === "fused" ? `distillery ${backend} fused MLP step` : `distillery ${backend}`
    )
  const torch = (device: string) =>
    runJson(python, [path.join(here, "torch_gpu.py"), device, String(steps), String(batch), hidden.join(",")], `pytorch ${device}`)
  const rows: Array<StepResult> = [node("webgpu"), node("webgpu", "tfjs"), node("webgpu", "fused"), torch("cuda")]
  if (!argv.includes("--no-cpu")) rows.push(node("native"), torch("cpu"))
  console.log(`Adam step, MLP ${sizes.join("-")}, batch ${batch} (${(flopsPerStep / 1e9).toFixed(2)} GFLOP a step)\n`)
  for (const r of rows) {
    const issue = r.issueMsPerStep === undefined ? "" : `  issue ${r.issueMsPerStep.toFixed(2)} ms, ${r.dispatchesPerStep!.toFixed(0)} dispatches`
    console.log(
      r.error !== undefined
        ? `${r.config.padEnd(34)} unavailable: ${r.error.slice(0, 200)}`
        : `${r.config.padEnd(34)} ${r.msPerStep!.toFixed(2).padStart(9)} ms/step ${r.gflops!.toFixed(1).padStart(8)} GFLOP/s ` +
            `${r.peakRssMB!.toFixed(0).padStart(6)} MB peak RSS  (${r.backend})${issue}`
    )
  }
  const checked = spawnSync(process.execPath, [...loader, self, "--child", "check", ...passOn], { encoding: "utf8" })
  const agreement = (checked.stdout ?? "").trim().split("\n").pop() ?? ""
  console.log(`\nfused step vs the tfjs path, same seed: ${agreement || `failed: ${(checked.stderr ?? "").slice(-300)}`}`)
  const dir = path.join(here, "results")
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `gpu-${new Date().toISOString().replace(/[:.]/g, "-")}.json`)
  fs.writeFileSync(file, JSON.stringify({ sizes, batch, flopsPerStep, steps, rows, agreement }, null, 2))
  console.log(`\nwritten to ${path.relative(process.cwd(), file)}`)
}

await main()
