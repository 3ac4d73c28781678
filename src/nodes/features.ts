/**
 * The `features` node kind: runs a model (typically a teacher) over a split of a dataset and caches
 * one layer's activations, flattened to (N, D), as a `Features` artifact. Students then read them for
 * FitNets hints or RKD relations (train's `hint` / `relation` inputs) without recomputing the teacher.
 */
import { Effect, Schema } from "effect"
import type { Features } from "../domain/Artifact.js"
import { defineKind, NodeError, onRun } from "./NodeKind.js"
import { SplitParam } from "./generate.js"

export const FeaturesParams = Schema.Struct({
  split: Schema.optionalWith(SplitParam, { default: () => "train" as const }).annotations({
    description: "Which split's examples to run: the split the students train on (train, unless a transfer set says otherwise)"
  }),
  layer: Schema.optionalWith(Schema.String, { default: () => "penultimate" }).annotations({
    description: "The layer: hidden<i>, conv<i> or penultimate (the input of the output layer)"
  })
})

export const FeaturesKind = defineKind({
  kind: "features",
  version: 1,
  heavy: true,
  description: "Runs a model over a split and caches one layer's activations (for FitNets hints and RKD)",
  params: FeaturesParams,
  inputs: {
    model: { type: "Model", description: "the model whose layer is exported (the teacher)" },
    data: { type: "Dataset", description: "the dataset holding the split" }
  },
  outputs: { features: "Features" },
  run: (ctx) =>
    Effect.gen(function* () {
      const { params, inputs } = ctx
      const split = inputs.data.splits[params.split]
      const n = split.y.length
      const fail = (message: string, cause?: unknown) => new NodeError({ node: ctx.nodeId, kind: "features", message, cause })
      const { featuresOf, loadNetwork } = yield* onRun(() => import("../models/Network.js"))
      const net = yield* Effect.try({
        try: () => loadNetwork(inputs.model),
        catch: (cause) => fail(`could not load the model: ${String(cause)}`, cause)
      })
      const values = yield* Effect.tryPromise({
        try: () => featuresOf(net, params.layer, split.x, n),
        catch: (cause) =>
          fail(
            net.layerNames.includes(params.layer)
              ? `could not run the model: ${String(cause)}`
              : `the model has no layer '${params.layer}'; its layers are: ${net.layerNames.join(", ")}`,
            cause
          )
      }).pipe(Effect.ensuring(Effect.sync(() => net.dispose())))
      const width = n > 0 ? values.length / n : 0
      ctx.metric({ name: "examples", value: n })
      ctx.metric({ name: "width", value: width })
      ctx.info({ layer: params.layer, split: params.split, width })
      const features: Features = {
        _tag: "Features",
        split: params.split,
        layer: params.layer,
        model: ctx.inputNodes.model ?? "model",
        ids: split.ids,
        shape: [width],
        values
      }
      return { features }
    })
})
