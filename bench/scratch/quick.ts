import * as tf from "@tensorflow/tfjs"
import { initBackend } from "../../src/backend/Backend.js"
import { train } from "../../src/train/Trainer.js"
import { makeRng } from "../../src/domain/Random.js"

const backend = (process.argv[2] ?? "wasm") as "wasm"
await initBackend(backend)
const n = 8000, d = 784
const rng = makeRng(1)
const x = Float32Array.from({ length: n * d }, () => rng.next())
const y = Int32Array.from({ length: n }, () => Math.floor(rng.next() * 10))
// raw matmul
for (const [m, k, nn, ta, tb] of [[128, 784, 512, false, false], [128, 512, 512, false, true], [784, 128, 512, true, false], [512, 128, 512, true, false]] as const) {
  const a = tf.randomNormal(ta ? [k, m] : [m, k]) as tf.Tensor2D, b = tf.randomNormal(tb ? [nn, k] : [k, nn]) as tf.Tensor2D
  for (let i = 0; i < 5; i++) tf.matMul(a, b, ta, tb).dispose()
  const reps = 50; const t0 = performance.now()
  for (let i = 0; i < reps; i++) { const c = tf.matMul(a, b, ta, tb); c.dataSync(); c.dispose() }
  const dt = (performance.now() - t0) / reps
  console.log(`matmul ${m}x${k}x${nn} ta=${ta} tb=${tb}: ${(2 * m * k * nn / dt / 1e6).toFixed(1)} GFLOP/s`)
  a.dispose(); b.dispose()
}
const t0 = performance.now()
const r = await train({
  spec: { type: "mlp", hidden: [512, 512], activation: "relu", dropout: 0, inputDropout: 0 } as never,
  featureShape: [784], numClasses: 10, train: { x, y },
  loss: (logits, labels) => tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 10), logits) as tf.Scalar,
  optimizer: { type: "adam", learningRate: 0.001 }, batchSize: 128, epochs: 3, seed: 1, checkpoint: "last"
})
const s = (performance.now() - t0) / 1000
console.log(r.history.map((h) => h.examplesPerSecond.toFixed(0)), `total ${s.toFixed(2)}s`, `${(3 * n * 6 * (784 * 512 + 512 * 512 + 5120) / s / 1e9).toFixed(1)} GFLOP/s`)
