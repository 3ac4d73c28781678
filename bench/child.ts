/**
 * One benchmark configuration, run in its own process by bench/train.ts so that its peak RSS is its
 * own. Trains one model on the data file the parent wrote and prints one JSON line:
 * { seconds, examples, finalLoss, backend, maxRssMB }.
 *
 *   runner "distillery": src/train/Trainer.ts's train() with the train node's objective (what
 *     `distillery run` executes), on Distillery's backend `backend` (native, wasm, cpu).
 *   runner "layers": plain tfjs, a tf.layers model and model.fit, on tfjs's own `cpu` or `wasm`
 *     backend as shipped (no Distillery kernel fixes).
 *   runner "lm": a language model of bench/models.ts `benchLms` trained by src/train/LanguageModel.ts
 *     `trainLanguageModel` (what an lm train node runs) on random tokens: `warmup` steps untimed, then
 *     `steps` timed ones; prints { seconds, examples: tokens, finalLoss, backend, maxRssMB }.
 *   runner "generate": the same model decoding with the KV cache (src/generation/Decode.ts): a prefill
 *     of a half-context prompt, then one row stepped from position 1 to the context, timed per token.
 */
import * as tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import * as fs from "node:fs"
import type { BackendName } from "../src/backend/Backend.js"
import { initBackend } from "../src/backend/Backend.js"
import { setNativeThreads } from "../src/backend/Native.js"
import { objectiveLoss, ObjectiveSpec } from "../src/losses/Objective.js"
import type { ModelSpec } from "../src/models/ModelSpec.js"
import { makeDecoder } from "../src/generation/Decode.js"
import { makeRng } from "../src/domain/Random.js"
import { buildTransformer } from "../src/models/Transformer.js"
import { trainLanguageModel } from "../src/train/LanguageModel.js"
import { train } from "../src/train/Trainer.js"
import type { BenchLm } from "./models.js"
import { findLm, findModel } from "./models.js"

export interface ChildConfig {
  readonly model: string
  readonly runner: "distillery" | "layers" | "lm" | "generate"
  readonly backend: string
  readonly threads?: number
  readonly examples: number
  readonly epochs: number
  readonly batchSize: number
  readonly dataFile: string
  readonly totalExamples: number
  /** lm: untimed optimizer steps before the timed `steps`. */
  readonly warmup?: number
  readonly steps?: number
}

export interface ChildResult {
  readonly seconds: number
  readonly examples: number
  readonly finalLoss: number
  readonly backend: string
  readonly maxRssMB: number
  /** generate: ms per decoded token, for positions 1..context-1 (the position of the token fed in). */
  readonly stepMs?: ReadonlyArray<number>
  /** generate: seconds of the prefill of `prefillTokens` tokens. */
  readonly prefillSeconds?: number
  readonly prefillTokens?: number
}

const readData = (file: string, total: number, n: number): { x: Float32Array; y: Int32Array } => {
  const buf = fs.readFileSync(file)
  const x = new Float32Array(buf.buffer, buf.byteOffset, total * 784).slice(0, n * 784)
  const y = new Int32Array(buf.buffer, buf.byteOffset + total * 784 * 4, total).slice(0, n)
  return { x, y }
}

const layersModel = (spec: ModelSpec): tf.Sequential => {
  const m = tf.sequential()
  if (spec.type === "mlp") {
    m.add(tf.layers.inputLayer({ inputShape: [784] }))
    if (spec.inputDropout > 0) m.add(tf.layers.dropout({ rate: spec.inputDropout }))
    for (const h of spec.hidden) {
      m.add(tf.layers.dense({ units: h, activation: "relu" }))
      if (spec.dropout > 0) m.add(tf.layers.dropout({ rate: spec.dropout }))
    }
  } else {
    m.add(tf.layers.reshape({ targetShape: [28, 28, 1], inputShape: [784] }))
    for (const c of spec.channels) {
      m.add(tf.layers.conv2d({ filters: c, kernelSize: 3, padding: "same", activation: "relu" }))
      m.add(tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }))
    }
    m.add(tf.layers.flatten())
    for (const h of spec.dense) m.add(tf.layers.dense({ units: h, activation: "relu" }))
  }
  m.add(tf.layers.dense({ units: 10, activation: "softmax" }))
  m.compile({ optimizer: tf.train.adam(0.001), loss: "categoricalCrossentropy" })
  return m
}

const runLayers = async (c: ChildConfig, spec: ModelSpec, x: Float32Array, y: Int32Array): Promise<Omit<ChildResult, "maxRssMB">> => {
  if (c.backend === "wasm") await import("@tensorflow/tfjs-backend-wasm")
  if (!(await tf.setBackend(c.backend))) throw new Error(`tfjs backend ${c.backend} failed`)
  await tf.ready()
  const model = layersModel(spec)
  const xs = tf.tensor2d(x, [c.examples, 784])
  const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(y, "int32"), 10))
  const t0 = performance.now()
  const h = await model.fit(xs, ys, { batchSize: c.batchSize, epochs: c.epochs, shuffle: true, verbose: 0 })
  const seconds = (performance.now() - t0) / 1000
  const losses = h.history["loss"] as Array<number>
  return { seconds, examples: c.examples * c.epochs, finalLoss: losses[losses.length - 1]!, backend: tf.getBackend() }
}

const runDistillery = async (c: ChildConfig, spec: ModelSpec, x: Float32Array, y: Int32Array): Promise<Omit<ChildResult, "maxRssMB">> => {
  if (c.threads !== undefined) setNativeThreads(c.threads)
  await initBackend(c.backend as BackendName)
  const objective = Schema.decodeSync(ObjectiveSpec)({})
  const t0 = performance.now()
  const r = await train({
    spec,
    featureShape: [784],
    numClasses: 10,
    train: { x, y },
    loss: (logits, labels, teacher) => objectiveLoss(objective, logits, labels, teacher),
    optimizer: { type: "adam", learningRate: 0.001 },
    batchSize: c.batchSize,
    epochs: c.epochs,
    seed: 1,
    checkpoint: "last"
  })
  const seconds = (performance.now() - t0) / 1000
  return { seconds, examples: c.examples * c.epochs, finalLoss: r.history[r.history.length - 1]!.trainLoss, backend: r.info.backend }
}

/** `rows` random sequences over the vocabulary; targets are the inputs shifted by one, as a pack's are. */
const randomTokens = (m: BenchLm, rows: number, seed: number) => {
  const T = m.spec.context
  const rng = makeRng(seed)
  const stream = Int32Array.from({ length: rows * T + 1 }, () => rng.int(m.spec.vocabSize))
  return { length: T, inputs: stream.slice(0, rows * T), targets: stream.slice(1, rows * T + 1) }
}

const runLm = async (c: ChildConfig, m: BenchLm): Promise<Omit<ChildResult, "maxRssMB">> => {
  if (c.threads !== undefined) setNativeThreads(c.threads)
  await initBackend(c.backend as BackendName)
  const warmup = c.warmup ?? 2
  const steps = c.steps ?? 5
  const ends: Array<number> = []
  const r = await trainLanguageModel({
    spec: m.spec,
    train: randomTokens(m, c.batchSize * 8, 1),
    optimizer: { type: "adam", learningRate: 3e-4, weightDecay: 0.1 },
    batchSize: c.batchSize,
    steps: warmup + steps,
    evalEvery: 1,
    warmupSteps: 0,
    clipNorm: 1,
    seed: 1,
    checkpoint: "last",
    onRound: () => ends.push(performance.now())
  })
  const seconds = (ends[ends.length - 1]! - ends[warmup - 1]!) / 1000
  return { seconds, examples: steps * c.batchSize * m.spec.context, finalLoss: r.history[r.history.length - 1]!.trainLoss, backend: r.info.backend }
}

const runGenerate = async (c: ChildConfig, m: BenchLm): Promise<Omit<ChildResult, "maxRssMB">> => {
  if (c.threads !== undefined) setNativeThreads(c.threads)
  const backend = await initBackend(c.backend as BackendName)
  const model = buildTransformer(m.spec, 1)
  const T = m.spec.context
  const rng = makeRng(2)
  const token = () => rng.int(m.spec.vocabSize)
  const decoder = makeDecoder(model)
  const prompt = Array.from({ length: T / 2 }, token)
  // Untimed: the first calls compile kernels and grow the heap.
  const warm = decoder.prefill([prompt])
  await warm.data()
  warm.dispose()
  for (let i = 0; i < 4; i++) {
    const next = decoder.step([token()])
    await next.data()
    next.dispose()
  }
  decoder.dispose()
  const prefill = makeDecoder(model)
  let t0 = performance.now()
  const logits = prefill.prefill([prompt])
  await logits.data()
  const prefillSeconds = (performance.now() - t0) / 1000
  logits.dispose()
  prefill.dispose()
  // One row from position 1 to the end of the context, reading each step's logits back as generate() does.
  const stepMs: Array<number> = []
  const d = makeDecoder(model)
  let last = d.prefill([[token()]])
  await last.data()
  for (let p = 1; p < T; p++) {
    last.dispose()
    t0 = performance.now()
    last = d.step([token()])
    await last.data()
    stepMs.push(performance.now() - t0)
  }
  last.dispose()
  d.dispose()
  model.dispose()
  const seconds = stepMs.reduce((a, b) => a + b, 0) / 1000
  return { seconds, examples: stepMs.length, finalLoss: 0, backend, stepMs, prefillSeconds, prefillTokens: prompt.length }
}

const main = async () => {
  const c = JSON.parse(process.argv[2]!) as ChildConfig
  const lmModel = findLm(c.model)
  if (lmModel !== undefined) {
    const r = c.runner === "generate" ? await runGenerate(c, lmModel) : await runLm(c, lmModel)
    process.stdout.write(`${JSON.stringify({ ...r, maxRssMB: process.resourceUsage().maxRSS / 1024 })}\n`)
    return
  }
  const model = findModel(c.model)
  const { x, y } = readData(c.dataFile, c.totalExamples, c.examples)
  const r = c.runner === "layers" ? await runLayers(c, model.spec, x, y) : await runDistillery(c, model.spec, x, y)
  const result: ChildResult = { ...r, maxRssMB: process.resourceUsage().maxRSS / 1024 }
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

main().catch((e: unknown) => {
  process.stdout.write(`${JSON.stringify({ error: e instanceof Error ? e.message : String(e) })}\n`)
  process.exitCode = 1
})
