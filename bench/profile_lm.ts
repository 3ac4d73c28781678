/**
 * Where a language model's training step spends its time, per tfjs kernel (tf.profile), on the native
 * backend: one forward + backward of nextTokenLoss (the step trainLanguageModel takes, without the
 * optimizer), after a warm-up step. `npx tsx bench/profile_lm.ts lm-teacher [threads]`.
 */
import * as tf from "@tensorflow/tfjs"
import { initBackend } from "../src/backend/Backend.js"
import { setNativeThreads } from "../src/backend/Native.js"
import { makeRng } from "../src/domain/Random.js"
import { nextTokenLoss } from "../src/losses/nextToken.js"
import { buildTransformer } from "../src/models/Transformer.js"
import { findLm } from "./models.js"

const main = async () => {
  const m = findLm(process.argv[2] ?? "lm-teacher")
  if (m === undefined) throw new Error("unknown language model")
  setNativeThreads(Number(process.argv[3] ?? 1))
  await initBackend("native")
  const model = buildTransformer(m.spec, 1)
  const [B, T] = [32, m.spec.context]
  const rng = makeRng(1)
  const x = tf.tensor2d(Int32Array.from({ length: B * T }, () => rng.int(m.spec.vocabSize)), [B, T], "int32")
  const y = tf.tensor2d(Int32Array.from({ length: B * T }, () => rng.int(m.spec.vocabSize)), [B, T], "int32")
  const step = () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => nextTokenLoss(model.forward(x, { training: true }).logits, y), model.variables as Array<tf.Variable>)
      return [value, ...Object.values(grads)]
    })
  tf.dispose(step())
  const t0 = performance.now()
  tf.dispose(step())
  const wall = performance.now() - t0
  const info = await tf.profile(() => step())
  const byKernel = new Map<string, { ms: number; calls: number }>()
  const detail = process.argv[4]
  for (const k of info.kernels) {
    const key = detail !== undefined && k.name === detail ? `${k.name} ${JSON.stringify(k.inputShapes)}` : k.name
    const e = byKernel.get(key) ?? { ms: 0, calls: 0 }
    e.ms += k.kernelTimeMs as number
    e.calls++
    byKernel.set(key, e)
  }
  const total = [...byKernel.values()].reduce((a, b) => a + b.ms, 0)
  const lines = [`${m.name}: step (fwd+bwd) ${wall.toFixed(0)} ms unprofiled; kernels sum ${total.toFixed(0)} ms`]
  for (const [name, e] of [...byKernel.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25)) {
    lines.push(`${name.padEnd(40)} ${e.ms.toFixed(1).padStart(8)} ms ${String(e.calls).padStart(5)} calls`)
  }
  process.stdout.write(`${lines.join("\n")}\n`)
}

main()
