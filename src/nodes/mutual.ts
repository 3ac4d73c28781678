/**
 * The `mutual` node kind: online distillation by deep mutual learning (Zhang et al. 2018; the loop is
 * train/Mutual.ts). Two or more students train together on the dataset's train split, each minimising
 * CE + weight * T^2 * mean over the others of KL(other || self).
 *
 * Outputs: `model` is the student with the best validation accuracy (the first on ties, or without a
 * validation split); `model0` and `model1` are the first two students as listed, which always exist,
 * so each can be evaluated on its own. A third or later student is an output only as `model` when it
 * is the best; every student's final validation accuracy is a metric (`student<k>_val_accuracy`).
 */
import { Effect, Schema } from "effect"
import type { Model } from "../domain/Artifact.js"
import { parameterCount } from "../domain/Artifact.js"
import { ModelSpec } from "../models/ModelSpec.js"
import { defineKind, NodeError, onRun } from "./NodeKind.js"
import { AdamParams, OptimizerParams } from "./train.js"

export const MutualParams = Schema.Struct({
  students: Schema.propertySignature(Schema.Array(ModelSpec).pipe(Schema.minItems(2))).annotations({
    description: "Two or more students; they may differ in architecture"
  }),
  optimizer: Schema.optionalWith(OptimizerParams, {
    default: () => Schema.decodeSync(AdamParams)({ type: "adam" })
  }).annotations({ description: "Every student's optimizer: adam or sgd, with their settings" }),
  batchSize: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 128 }).annotations({
    description: "Examples per batch; all students see the same batches"
  }),
  epochs: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { default: () => 10 }).annotations({
    description: "Passes over the training split"
  }),
  checkpoint: Schema.optionalWith(Schema.Literal("best", "last"), { default: () => "best" as const }).annotations({
    description: "Keep each student's best validation-loss epoch, or its last"
  }),
  weight: Schema.optionalWith(Schema.NonNegative, { default: () => 1 }).annotations({
    description: "Weight of the mean KL to the other students (1 in the paper)"
  }),
  temperature: Schema.optionalWith(Schema.Number.pipe(Schema.positive()), { default: () => 1 }).annotations({
    description: "Temperature of the KL term (1 in the paper); the term is scaled by T^2"
  })
})
export type MutualParams = typeof MutualParams.Type

/** What is recorded as the node's objective. */
export const describeMutual = (p: MutualParams): Record<string, string | number> => ({
  method: "deep mutual learning",
  paper: "Zhang, Xiang, Hospedales & Lu 2018, Deep Mutual Learning",
  direction: "KL(other student || this student), the others' predictions held constant",
  students: p.students.length,
  temperature: p.temperature,
  temperatureFactor: p.temperature * p.temperature,
  klWeight: p.weight * p.temperature * p.temperature,
  ceWeight: 1,
  loss: `CE(labels) + ${p.weight * p.temperature * p.temperature} * mean_{l != k} mean_b KL(q_l,T || q_k,T)`
})

export const MutualKind = defineKind({
  kind: "mutual",
  version: 1,
  heavy: true,
  description: "Trains two or more students together by deep mutual learning; outputs the best and the first two",
  params: MutualParams,
  inputs: {
    data: { type: "Dataset", description: "the dataset (train split to learn, validation split to pick checkpoints and the best student)" }
  },
  outputs: { model: "Model", model0: "Model", model1: "Model" },
  run: (ctx) =>
    Effect.gen(function* () {
      const { params, nodeId } = ctx
      const data = ctx.inputs.data
      const fail = (message: string, cause?: unknown) => new NodeError({ node: nodeId, kind: "mutual", message, cause })
      if (data.splits.train.y.length === 0) return yield* fail(`the train split of dataset '${data.name}' is empty`)
      ctx.info({ objective: describeMutual(params), backend: ctx.backend, trainExamples: data.splits.train.y.length })
      const validation = data.splits.validation.y.length > 0 ? { x: data.splits.validation.x, y: data.splits.validation.y } : undefined
      const K = params.students.length
      const { trainMutual } = yield* onRun(() => import("../train/Mutual.js"))
      const result = yield* Effect.tryPromise({
        try: (signal) =>
          trainMutual({
            students: params.students,
            featureShape: data.featureShape,
            numClasses: data.numClasses,
            train: { x: data.splits.train.x, y: data.splits.train.y },
            ...(validation !== undefined ? { validation } : {}),
            optimizer: params.optimizer,
            batchSize: params.batchSize,
            epochs: params.epochs,
            seed: ctx.seed,
            weight: params.weight,
            temperature: params.temperature,
            checkpoint: params.checkpoint,
            signal,
            onBatch: (r) => ctx.progress({ done: r.epoch - 1 + r.batch / r.batches, total: params.epochs, unit: "epoch" }),
            onEpoch: (r) =>
              ctx.progress({
                done: r.epoch,
                total: params.epochs,
                unit: "epoch",
                facts: Object.fromEntries(r.students.flatMap((s, k) => (s.valAccuracy !== undefined ? [[`val_acc${k}`, s.valAccuracy]] : [[`loss${k}`, s.trainLoss]])))
              })
          }),
        catch: (cause) => fail(`training failed: ${cause instanceof Error ? cause.message : String(cause)}`, cause)
      })
      for (const epoch of result.history) {
        epoch.students.forEach((s, k) => {
          ctx.metric({ name: `student${k}_train_loss`, step: epoch.epoch, value: s.trainLoss })
          if (s.valLoss !== undefined) ctx.metric({ name: `student${k}_val_loss`, step: epoch.epoch, value: s.valLoss })
          if (s.valAccuracy !== undefined) ctx.metric({ name: `student${k}_val_accuracy`, step: epoch.epoch, value: s.valAccuracy })
        })
      }
      const models: Array<Model> = result.students.map((s, k) => ({
        _tag: "Model" as const,
        spec: Schema.encodeSync(ModelSpec)(params.students[k]!),
        featureShape: data.featureShape,
        numClasses: data.numClasses,
        weights: s.weights,
        info: { ...s.info, student: k, students: K }
      }))
      result.students.forEach((s, k) => {
        if (Number.isFinite(s.info.valAccuracy)) ctx.metric({ name: `student${k}_val_accuracy`, value: s.info.valAccuracy })
        ctx.metric({ name: `student${k}_params`, value: parameterCount(models[k]!) })
      })
      ctx.metric({ name: "best_student", value: result.best })
      ctx.metric({ name: "params", value: parameterCount(models[result.best]!) })
      ctx.info({ bestStudent: result.best, checkpoints: result.students.map((s) => s.info) })
      return { model: models[result.best]!, model0: models[0]!, model1: models[1]! }
    })
})
