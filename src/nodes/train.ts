/**
 * The `train` node kind: builds a model from its spec and trains it, on hard labels alone or distilled
 * from a teacher's SoftLabels with the objective `alpha * T^2 * D(teacher_T, student_T) + (1 - alpha) *
 * CE(labels)` (see losses/Objective.ts). Teachers and students are both trained with it. With a
 * teacher, the student learns from the teacher's examples (the transfer set, after any filter).
 * Optional feature-based terms join the objective: a FitNets hint (`hint` input + param) and an RKD
 * relation (`relation` input + param), both reading a teacher layer cached by a `features` node.
 */
import type * as tf from "@tensorflow/tfjs"
import { rowsOf, takeRows } from "../domain/Rows.js"
import { Effect, Schema } from "effect"
import type { Dataset, SoftLabels, Split } from "../domain/Artifact.js"
import type { Features, SplitName } from "../domain/Artifact.js"
import { featureSize, parameterCount } from "../domain/Artifact.js"
import { ObjectiveSpec } from "../losses/ObjectiveSpec.js"
import { ModelSpec } from "../models/ModelSpec.js"
import type { ExtraTerm } from "../train/ExtraTerms.js"
import type { TrainOptions } from "../train/Contract.js"
import { defineKind, NodeError, onRun } from "./NodeKind.js"

const positive = Schema.Number.pipe(Schema.positive())

const weight = Schema.optionalWith(Schema.NonNegative, { default: () => 1 }).annotations({
  description: "Weight of the term in the loss"
})

/** FitNets hint: the student layer, projected to the teacher layer's width, regressed onto it. */
export const HintParams = Schema.Struct({
  studentLayer: Schema.propertySignature(Schema.String).annotations({
    description: "The student layer (hidden<i>, conv<i> or penultimate) that is projected onto the teacher's"
  }),
  loss: Schema.optionalWith(Schema.Literal("mse", "cosine"), { default: () => "mse" as const }).annotations({
    description: "mse: mean squared error to the teacher layer; cosine: 1 - cos"
  }),
  weight
})
export type HintParams = typeof HintParams.Type

/** RKD: the student layer's batch geometry matched to the teacher features'. */
export const RelationParams = Schema.Struct({
  loss: Schema.optionalWith(Schema.Literal("distance", "angle", "both"), { default: () => "distance" as const }).annotations({
    description: "distance: pairwise distances (RKD-D); angle: angles of triples (RKD-A); both: RKD-D + 2 RKD-A"
  }),
  weight,
  layer: Schema.optionalWith(Schema.String, { default: () => "penultimate" }).annotations({
    description: "The student layer whose embeddings are compared (its penultimate layer unless said otherwise)"
  })
})
export type RelationParams = typeof RelationParams.Type

export const AdamParams = Schema.Struct({
  type: Schema.Literal("adam"),
  learningRate: Schema.optionalWith(positive, { default: () => 0.001 }).annotations({ description: "Step size" }),
  beta1: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0.9 }).annotations({
    description: "Decay of the first-moment (mean) estimate"
  }),
  beta2: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0.999 }).annotations({
    description: "Decay of the second-moment estimate"
  }),
  epsilon: Schema.optionalWith(positive, { default: () => 1e-7 }).annotations({
    description: "Added to the root of the second moment, for stability"
  }),
  weightDecay: Schema.optionalWith(Schema.NonNegative, { default: () => 0 }).annotations({
    description: "L2 penalty on the weights"
  })
})

export const SgdParams = Schema.Struct({
  type: Schema.Literal("sgd"),
  learningRate: Schema.optionalWith(positive, { default: () => 0.01 }).annotations({ description: "Step size" }),
  momentum: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0.9 }).annotations({
    description: "Momentum"
  }),
  nesterov: Schema.optionalWith(Schema.Boolean, { default: () => false }).annotations({
    description: "Nesterov momentum"
  }),
  weightDecay: Schema.optionalWith(Schema.NonNegative, { default: () => 0 }).annotations({
    description: "L2 penalty on the weights"
  })
})

export const OptimizerParams = Schema.Union(AdamParams, SgdParams)

export const TrainParams = Schema.Struct({
  model: Schema.propertySignature(ModelSpec).annotations({
    description: "The network: { type: mlp, hidden } or { type: cnn, channels }"
  }),
  optimizer: Schema.optionalWith(OptimizerParams, {
    default: () => Schema.decodeSync(AdamParams)({ type: "adam" })
  }).annotations({ description: "adam or sgd, with their settings" }),
  batchSize: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 128 }).annotations({
    description: "Examples per batch"
  }),
  epochs: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 10 }).annotations({
    description: "Passes over the training split (fewer with early stopping)"
  }),
  earlyStopping: Schema.optional(
    Schema.Struct({
      patience: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 3 }).annotations({
        description: "Epochs without improvement before training stops"
      }),
      metric: Schema.optionalWith(Schema.Literal("val_loss", "val_accuracy"), { default: () => "val_loss" as const }).annotations({
        description: "The validation metric that must improve"
      })
    })
  ).annotations({ description: "Stop when the validation metric has not improved for patience epochs (absent: train every epoch)" }),
  checkpoint: Schema.optionalWith(Schema.Literal("best", "last"), { default: () => "best" as const }).annotations({
    description: "The weights kept: the best validation-loss epoch's, or the last epoch's"
  }),
  objective: Schema.optionalWith(ObjectiveSpec, { default: () => Schema.decodeSync(ObjectiveSpec)({}) }).annotations({
    description: "The loss: alpha * T^2 * D(teacher_T, student_T) + (1 - alpha) * CE(labels) with a teacher input, CE alone without"
  }),
  hint: Schema.optional(HintParams).annotations({
    description: "FitNets hint from the `hint` input's teacher layer (absent: no hint; not part of the cache key then)"
  }),
  relation: Schema.optional(RelationParams).annotations({
    description: "RKD from the `relation` input's teacher embeddings"
  })
})
export type TrainParams = typeof TrainParams.Type

/** Rows of `split` in the order of `ids` (a transfer set's example ids), or fails naming a missing id. */
export const gatherRows = (
  split: Split,
  featureLength: number,
  ids: Int32Array
): { readonly x: Float32Array; readonly y: Int32Array } | { readonly missing: number } => {
  const found = rowsOf(split.ids, ids)
  if ("missing" in found) return found
  return { x: takeRows(split.x, featureLength, found.rows), y: Int32Array.from(found.rows, (r) => split.y[r]!) }
}

const teacherTargets = (soft: SoftLabels): NonNullable<TrainOptions["teacher"]> =>
  soft.logits !== undefined
    ? { logits: soft.logits }
    : {
        topk: {
          k: soft.topk!.k,
          indices: soft.topk!.indices,
          values: soft.topk!.values,
          tailLogSumExp: soft.topk!.tailLogSumExp
        }
      }

export const TrainKind = defineKind({
  kind: "train",
  version: 1,
  heavy: true,
  description: "Trains a model on hard labels, or distils it from a teacher's soft labels",
  params: TrainParams,
  inputs: {
    data: { type: "Dataset", description: "the dataset (its validation split drives early stopping and checkpoints)" },
    teacher: { type: "SoftLabels", optional: true, description: "the teacher's outputs over the transfer set" },
    hint: { type: "Features", optional: true, description: "a teacher layer for the FitNets hint (with param hint)" },
    relation: { type: "Features", optional: true, description: "teacher embeddings for RKD (with param relation)" }
  },
  outputs: { model: "Model" },
  run: (ctx) =>
    Effect.gen(function* () {
      const { params, nodeId } = ctx
      const { describeObjective, objectiveLoss } = yield* onRun(() => import("../losses/Objective.js"))
      const { featureWidth } = yield* onRun(() => import("../models/Network.js"))
      const { combineTerms, hintTerm, relationTerm } = yield* onRun(() => import("../train/ExtraTerms.js"))
      const { train } = yield* onRun(() => import("../train/Trainer.js"))
      const { alignFeatures, describeHint, describeRelation, totalLoss } = yield* onRun(() => import("./terms.js"))
      const data: Dataset = ctx.inputs.data
      const soft: SoftLabels | undefined = ctx.inputs.teacher
      const fail = (message: string, cause?: unknown) => new NodeError({ node: nodeId, kind: "train", message, cause })
      const D = featureSize(data.featureShape)
      if (soft !== undefined && soft.numClasses !== data.numClasses) {
        return yield* fail(`the teacher has ${soft.numClasses} classes but dataset '${data.name}' has ${data.numClasses}`)
      }
      const rows = soft === undefined ? { x: data.splits.train.x, y: data.splits.train.y } : gatherRows(data.splits[soft.split], D, soft.ids)
      if ("missing" in rows) {
        return yield* fail(`the teacher's outputs name example ${rows.missing}, which is not in the ${soft!.split} split of dataset '${data.name}'`)
      }
      if (rows.y.length === 0) return yield* fail("no training examples (did a filter drop them all?)")
      const labels = soft === undefined ? rows.y : soft.labels
      const objective = params.objective

      // Feature terms: each needs its input and its param, and features for every training row.
      const rowSplit: SplitName = soft === undefined ? "train" : soft.split
      const rowIds = soft === undefined ? data.splits.train.ids : soft.ids
      const teacherFeatures = (port: "hint" | "relation", features: Features | undefined, wanted: boolean, example: string) =>
        Effect.gen(function* () {
          if (features === undefined && !wanted) return undefined
          if (features === undefined) return yield* fail(`param '${port}' needs the '${port}' input: wire a features node (the teacher's layer) to it`)
          if (!wanted) return yield* fail(`input '${port}' is wired but param '${port}' is missing; add ${example}`)
          const aligned = alignFeatures(features, rowSplit, rowIds)
          if ("problem" in aligned) return yield* fail(`the '${port}' features (layer ${features.layer}) do not fit the training rows: ${aligned.problem}`)
          return aligned
        })
      const hintRows = yield* teacherFeatures("hint", ctx.inputs.hint, params.hint !== undefined, "hint: { studentLayer: hidden1 }")
      const relationRows = yield* teacherFeatures("relation", ctx.inputs.relation, params.relation !== undefined, "relation: { loss: distance }")
      const studentWidth = (layer: string) =>
        Effect.try({
          try: () => featureWidth(params.model, data.featureShape, data.numClasses, layer),
          catch: (cause) => fail(`${cause instanceof Error ? cause.message : String(cause)}`, cause)
        })
      const hintWidth = params.hint !== undefined ? yield* studentWidth(params.hint.studentLayer) : 0
      if (params.relation !== undefined) yield* studentWidth(params.relation.layer)

      const base = describeObjective(soft === undefined ? { ...objective, divergence: "none" } : objective)
      const description = {
        ...base,
        ...(params.hint !== undefined ? { hint: describeHint(params.hint, ctx.inputs.hint!, hintWidth), hintWeight: params.hint.weight } : {}),
        ...(params.relation !== undefined
          ? { relation: describeRelation(params.relation, ctx.inputs.relation!), relationWeight: params.relation.weight }
          : {}),
        loss: totalLoss(String(base.loss), params.hint, params.relation)
      }
      ctx.info({ objective: description, backend: ctx.backend, trainExamples: rows.y.length })
      /** Device-side terms, made inside the training call so that they are freed with it. */
      const makeExtra = (): ExtraTerm | undefined => {
        const terms: Array<ExtraTerm> = []
        try {
          if (params.hint !== undefined) {
            terms.push(
              hintTerm({
                teacher: hintRows!,
                studentLayer: params.hint.studentLayer,
                studentWidth: hintWidth,
                loss: params.hint.loss,
                weight: params.hint.weight,
                seed: ctx.seed
              })
            )
          }
          if (params.relation !== undefined) {
            terms.push(relationTerm({ teacher: relationRows!, studentLayer: params.relation.layer, loss: params.relation.loss, weight: params.relation.weight }))
          }
        } catch (e) {
          terms.forEach((t) => t.dispose())
          throw e
        }
        return combineTerms(terms)
      }
      const validation = data.splits.validation.y.length > 0 ? { x: data.splits.validation.x, y: data.splits.validation.y } : undefined
      const result = yield* Effect.tryPromise({
        try: async (signal) => {
          const extra = makeExtra()
          try {
            return await train({
              spec: params.model,
              featureShape: data.featureShape,
              numClasses: data.numClasses,
              train: { x: rows.x, y: labels },
              ...(validation !== undefined ? { validation } : {}),
              ...(soft !== undefined ? { teacher: teacherTargets(soft) } : {}),
              loss: (studentLogits: tf.Tensor2D, y: tf.Tensor1D, teacher?: Parameters<TrainOptions["loss"]>[2]) =>
                objectiveLoss(objective, studentLogits, y, teacher),
              ...(extra === undefined ? { objective } : {}),
              optimizer: params.optimizer,
              batchSize: params.batchSize,
              epochs: params.epochs,
              seed: ctx.seed,
              ...(params.earlyStopping !== undefined ? { earlyStopping: params.earlyStopping } : {}),
              checkpoint: params.checkpoint,
              signal,
              onBatch: (r) =>
                ctx.progress({ done: r.epoch - 1 + r.batch / r.batches, total: params.epochs, unit: "epoch" }),
              onEpoch: (r) =>
                ctx.progress({
                  done: r.epoch,
                  total: params.epochs,
                  unit: "epoch",
                  facts: {
                    loss: r.trainLoss,
                    ...(r.valLoss !== undefined ? { val_loss: r.valLoss } : {}),
                    ...(r.valAccuracy !== undefined ? { val_acc: r.valAccuracy } : {})
                  }
                }),
              ...(extra !== undefined ? { extra } : {})
            })
          } finally {
            extra?.dispose()
          }
        },
        catch: (cause) => fail(`training failed: ${cause instanceof Error ? cause.message : String(cause)}`, cause)
      })
      for (const epoch of result.history) {
        ctx.metric({ name: "train_loss", step: epoch.epoch, value: epoch.trainLoss })
        if (epoch.valLoss !== undefined) ctx.metric({ name: "val_loss", step: epoch.epoch, value: epoch.valLoss })
        if (epoch.valAccuracy !== undefined) ctx.metric({ name: "val_accuracy", step: epoch.epoch, value: epoch.valAccuracy })
        ctx.metric({ name: "examples_per_second", step: epoch.epoch, value: epoch.examplesPerSecond })
      }
      const info = result.info as Record<string, string | number | boolean>
      for (const [name, value] of Object.entries(info)) {
        if (typeof value === "number") ctx.metric({ name, value })
      }
      ctx.metric({ name: "params", value: parameterCount(result) })
      ctx.info({ checkpoint: info })
      return {
        model: {
          _tag: "Model" as const,
          spec: Schema.encodeSync(ModelSpec)(params.model),
          featureShape: data.featureShape,
          numClasses: data.numClasses,
          weights: result.weights,
          info
        }
      }
    })
})
