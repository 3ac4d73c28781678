/**
 * An example plugin: the `label_noise` node kind flips a seeded fraction of a dataset's training labels
 * to another class. Distillation is known to help most when hard labels are noisy; this kind lets a
 * pipeline test that. A pipeline loads it with `plugins: [../plugins/label-noise/index.ts]`.
 */
import { Effect, Schema } from "effect"
import type { Dataset } from "../../src/index.js"
import { definePlugin, defineKind, makeRng } from "../../src/index.js"

export const LabelNoiseParams = Schema.Struct({
  /** Fraction of training labels replaced by a different, uniformly drawn class. */
  fraction: Schema.Number.pipe(Schema.between(0, 1))
})

export const LabelNoiseKind = defineKind({
  kind: "label_noise",
  version: 1,
  description: "Flips a seeded fraction of the training labels to another class",
  params: LabelNoiseParams,
  inputs: { data: { type: "Dataset", description: "the clean dataset" } },
  outputs: { dataset: "Dataset" },
  run: (ctx) =>
    Effect.sync(() => {
      const data: Dataset = ctx.inputs.data
      const rng = makeRng(ctx.seed)
      const y = Int32Array.from(data.splits.train.y)
      let flipped = 0
      for (let i = 0; i < y.length; i++) {
        if (y[i]! >= 0 && rng.next() < ctx.params.fraction) {
          // Any class but the true one.
          y[i] = (y[i]! + 1 + rng.int(data.numClasses - 1)) % data.numClasses
          flipped++
        }
      }
      ctx.metric({ name: "flipped", value: flipped })
      return {
        dataset: { ...data, name: `${data.name}+noise${ctx.params.fraction}`, splits: { ...data.splits, train: { ...data.splits.train, y } } }
      }
    })
})

export default definePlugin({ name: "label-noise", kinds: [LabelNoiseKind] })
