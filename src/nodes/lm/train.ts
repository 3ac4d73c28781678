/**
 * Language-model node kinds. `lm_train` trains a decoder-only transformer (models/Transformer.ts) on a
 * TextCorpus read through a Tokenizer: packed sequences, next-token cross-entropy (completion tokens
 * only for prompt/completion data), AdamW, warm-up then cosine decay, gradient clipping and
 * accumulation, the best checkpoint by validation loss. It is a kind of its own, not a `model:` type
 * of `train`, because its inputs (corpus + tokenizer), its budget (optimizer steps) and its output (a
 * LanguageModel that carries its tokenizer) all differ from the classifier's, and the classifier path
 * stays as it was. With a `teacher` LanguageModel of the same tokenizer and an `objective`, `lm_train`
 * distils it token by token (losses/tokenKd.ts: alpha * T^2 * the mean per counted target token of
 * D(teacher_T || student_T) + (1 - alpha) * next-token CE), the teacher's logits computed per batch.
 * An `init` model warm-starts the student. With `onPolicy` (GKD, Agarwal et al. 2024), a seeded share
 * lambda of the micro-batches are the current student's own continuations of the batch's prompts
 * (train/OnPolicy.ts), scored by the teacher: their loss is w_T * the mean over generated tokens of
 * D(teacher_T || student_T) (w_T = T^2 when scaleT2), with no CE (the data's CE is not defined on student samples), while the
 * other micro-batches keep the objective's alpha mix; lambda = 0 is plain token-level KD.
 *
 * With `scored` (a Generations artifact whose generated positions carry a scorer's top-k + tail
 * log-probs: lm_generate with a teacher scorer, or lm_score), the student trains on those samples
 * instead of the corpus's train split, with no teacher model: each sample is one sequence (prompt +
 * generated tokens, padded), the objective's divergence is taken at each generated position on the k + 1
 * buckets of the stored top-k + tail (losses/Buckets.ts's rule, so every divergence of the registry
 * works), mixed with (1 - alpha) * the CE of the generated tokens, mean per generated token. Validation
 * stays next-token CE on the corpus's validation split. `scored` excludes `teacher` (the scores are the
 * teacher) and `onPolicy` (that samples the student and needs a live teacher to score its samples).
 *
 * A corpus with per-document loss weights (lm_tasks' multi-task corpus) trains on the weighted
 * next-token CE: each counted target's NLL times its document's weight, over the count of counted
 * targets (all-ones weights: the plain loss). Only cross-entropy training reads them.
 */
import type * as tf from "@tensorflow/tfjs"
import { Effect, Schema } from "effect"
import type { Generations, LanguageModel, TextCorpus, Tokenizer } from "../../domain/Artifact.js"
import { parameterCount } from "../../domain/Artifact.js"
import { trainDocumentsPerTask } from "../../data/multitask.js"
import { divergenceNames, ObjectiveSpec } from "../../losses/ObjectiveSpec.js"
import type { TokenTopk } from "../../losses/tokenKd.js"
import { decodeTransformerSpec, TransformerSpec } from "../../models/TransformerSpec.js"
import { defineKind, onRun } from "../NodeKind.js"
import { AdamWParams, fail, LmModelSpec, positive, PositiveInt, sameTokenizer, specMismatch, tokenizerMismatch } from "./common.js"

export const OnPolicyParams = Schema.Struct({
  lambda: Schema.Number.pipe(Schema.between(0, 1)).annotations({
    description:
      "Share of micro-batches drawn from the student (a seeded draw per micro-batch): 0 is supervised token-level KD, 1 all on-policy (with divergence reverse_kl, or generalized_jsd with beta near 1: on-policy reverse KL as in MiniLLM)"
  }),
  promptTokens: Schema.optionalWith(PositiveInt, { default: () => 16 }).annotations({
    description:
      "Prompt of a sequence that does not start with prompt tokens (packed plain text): its first promptTokens tokens; a sequence that starts with prompt tokens of prompt/completion data keeps them as its prompt. Below the sequence length"
  }),
  temperature: Schema.optionalWith(Schema.NonNegative, { default: () => 1 }).annotations({
    description: "Sampling temperature of the student's continuations (0: greedy); the objective's temperature is apart"
  }),
  topK: Schema.optional(PositiveInt).annotations({ description: "Sample among the k most likely tokens (absent: all)" }),
  topP: Schema.optional(Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(1))).annotations({
    description: "Nucleus sampling: the fewest most likely tokens whose probabilities sum to topP (absent: all)"
  }),
  maxNewTokens: Schema.optional(PositiveInt).annotations({
    description: "At most this many tokens sampled per sequence (absent: up to the sequence length); shorter sequences are padded and masked"
  })
}).annotations({ identifier: "OnPolicy" })
export type OnPolicyParams = typeof OnPolicyParams.Type

export const LmTrainParams = Schema.Struct({
  model: Schema.propertySignature(LmModelSpec).annotations({
    description: "The decoder: { type: transformer, layers, width, heads, context }; vocabSize comes from the tokenizer"
  }),
  sequenceLength: Schema.optional(PositiveInt).annotations({
    description: "Tokens per packed training sequence, at most the model's context; absent: the context"
  }),
  batchSize: Schema.optionalWith(PositiveInt, { default: () => 16 }).annotations({ description: "Sequences per micro-batch" }),
  accumulate: Schema.optionalWith(PositiveInt, { default: () => 1 }).annotations({
    description: "Micro-batches whose gradients are averaged into one optimizer step (gradient accumulation)"
  }),
  steps: Schema.optionalWith(PositiveInt, { default: () => 200 }).annotations({ description: "Optimizer steps in all" }),
  evalEvery: Schema.optional(PositiveInt).annotations({
    description: "Validate (and checkpoint) every this many steps; must divide steps; absent: once, at the end"
  }),
  optimizer: Schema.optionalWith(AdamWParams, { default: () => Schema.decodeSync(AdamWParams)({ type: "adamw" }) }).annotations({
    description: "AdamW and its settings"
  }),
  warmupSteps: Schema.optionalWith(Schema.NonNegativeInt, { default: () => 0 }).annotations({
    description: "Steps of linear warm-up before the cosine decay; fewer than steps"
  }),
  minLrRatio: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0.1 }).annotations({
    description: "Where the cosine decay ends, as a fraction of the peak learning rate"
  }),
  gradClip: Schema.optional(positive).annotations({ description: "Clip the gradients to this global norm (absent: no clipping)" }),
  checkpoint: Schema.optionalWith(Schema.Literal("best", "last"), { default: () => "best" as const }).annotations({
    description: "The weights kept: those of the evaluation with the lowest validation loss, or the last"
  }),
  objective: Schema.optional(ObjectiveSpec).annotations({
    description:
      "Token-level KD from the 'teacher' input (dense logits) or the 'scored' input (stored top-k + tail per generated position): alpha * T^2 * mean per counted target token of D(teacher_T || student_T) + (1 - alpha) * next-token CE; absent: next-token CE only"
  }),
  onPolicy: Schema.optional(OnPolicyParams).annotations({
    description:
      "On-policy distillation (GKD, Agarwal et al. 2024; needs 'teacher' and 'objective'): a share lambda of micro-batches are the current student's samples continuing each sequence's prompt, trained on the mean over generated tokens of the objective's divergence (times T^2 when scaleT2), no CE and no alpha; the other micro-batches keep the objective as is"
  })
}).pipe(
  Schema.filter((p) => {
    if (p.evalEvery !== undefined && p.steps % p.evalEvery !== 0) return `evalEvery ${p.evalEvery} must divide steps ${p.steps}`
    if (p.warmupSteps >= p.steps) return `warmupSteps ${p.warmupSteps} must be below steps ${p.steps}`
    if (p.sequenceLength !== undefined && p.sequenceLength > p.model.context) return `sequenceLength ${p.sequenceLength} exceeds the model's context ${p.model.context}`
    const T = p.sequenceLength ?? p.model.context
    if (p.onPolicy !== undefined && p.onPolicy.promptTokens >= T) {
      return `onPolicy.promptTokens ${p.onPolicy.promptTokens} must be below the sequence length ${T}: the student needs room to generate`
    }
    return undefined
  }),
  Schema.annotations({ identifier: "LmTrainParams" })
)
export type LmTrainParams = typeof LmTrainParams.Type

/** The sampler and batch-source settings of train/OnPolicy.ts from the params. */
const onPolicySettings = (p: OnPolicyParams) => ({
  lambda: p.lambda,
  promptTokens: p.promptTokens,
  sampler: { temperature: p.temperature, ...(p.topK !== undefined ? { topK: p.topK } : {}), ...(p.topP !== undefined ? { topP: p.topP } : {}) },
  ...(p.maxNewTokens !== undefined ? { maxNewTokens: p.maxNewTokens } : {})
})

/** What nodes.info records of on-policy distillation: the draw, the sampler, and each batch source's loss. */
const describeOnPolicy = (p: OnPolicyParams, objective: Record<string, string | number | boolean>): Record<string, unknown> => ({
  ...onPolicySettings(p),
  method: "GKD (Agarwal et al. 2024): a seeded draw per micro-batch; with probability lambda its sequences are replaced by the current student's samples continuing their prompts",
  prompt: `the leading prompt tokens of prompt/completion sequences, else the first ${p.promptTokens} tokens`,
  onPolicyLoss: `${objective.temperatureFactor} * mean over generated tokens of ${objective.divergence}(p_T, q_T); no CE, no alpha`,
  offPolicyLoss: objective.loss
})

/** The loss weight of a task's first document in a multi-task corpus. */
const taskWeight = (corpus: TextCorpus, task: string): number => corpus.weights![corpus.tasks!.indexOf(task)] ?? 1

export const LmTrainKind = defineKind({
  kind: "lm_train",
  version: 1,
  heavy: true,
  description:
    "Trains a decoder-only transformer LM on a corpus through a tokenizer (AdamW, warm-up + cosine, clipping, accumulation); with a teacher, token-level KD: alpha * T^2 * mean per counted target token of D(teacher_T || student_T) + (1 - alpha) * next-token CE (reduction per token, not per sequence; prompt tokens count in neither term); with onPolicy, GKD: a share lambda of micro-batches are the student's own samples, trained on the divergence over the generated tokens only; with scored, offline token-level KD on stored samples against their top-k + tail scores (no teacher model); a kind apart from train, whose inputs, budget and output are a classifier's",
  params: LmTrainParams,
  inputs: {
    corpus: { type: "TextCorpus", description: "the text: trains on its train split (unless 'scored' is wired), validates on its validation split" },
    tokenizer: { type: "Tokenizer", description: "the tokenizer; it becomes part of the model artifact" },
    init: { type: "LanguageModel", optional: true, description: "start from this model's weights (same spec and tokenizer): a warm start" },
    teacher: { type: "LanguageModel", optional: true, description: "a teacher of the same tokenizer, distilled per token by param objective" },
    scored: {
      type: "Generations",
      optional: true,
      description:
        "samples of the same tokenizer with a scorer's top-k + tail log-probs at every generated position (lm_generate with a teacher scorer, or lm_score): trained on instead of the corpus's train split, by param objective on the k + 1 buckets of each position, no teacher model needed; excludes teacher and onPolicy"
    }
  },
  outputs: { model: "LanguageModel" },
  run: (ctx) =>
    Effect.gen(function* () {
      const { params } = ctx
      const corpus: TextCorpus = ctx.inputs.corpus
      const tokenizer: Tokenizer = ctx.inputs.tokenizer
      const init: LanguageModel | undefined = ctx.inputs.init
      const teacher: LanguageModel | undefined = ctx.inputs.teacher
      const scored: Generations | undefined = ctx.inputs.scored
      const { packCorpus, packedRows, packScored } = yield* onRun(() => import("../../tokenizer/Pack.js"))
      const { trainLanguageModel } = yield* onRun(() => import("../../train/LanguageModel.js"))
      const spec = yield* Schema.decodeUnknown(TransformerSpec)({ ...Schema.encodeSync(LmModelSpec)(params.model), vocabSize: tokenizer.vocabSize }).pipe(
        Effect.mapError((e) => fail(ctx, `the model spec does not fit the tokenizer: ${e.message}`, e))
      )
      if (init !== undefined && !sameTokenizer(init.tokenizer, tokenizer)) {
        return yield* fail(ctx, "input 'init' was trained with another tokenizer: wire the same tokenizer node to both")
      }
      const encoded = Schema.encodeSync(TransformerSpec)
      const specProblem = init !== undefined ? specMismatch(encoded(decodeTransformerSpec(init.spec)), encoded(spec)) : undefined
      if (specProblem !== undefined) return yield* fail(ctx, `input 'init' has another model spec (${specProblem}): a warm start needs the same shapes`)
      if (teacher !== undefined) {
        const problem = tokenizerMismatch("the teacher", teacher.tokenizer, tokenizer)
        if (problem !== undefined) return yield* fail(ctx, problem)
      }
      const objective = params.objective
      const distilling = objective !== undefined && objective.divergence !== "none"
      if (corpus.weights !== undefined && (teacher !== undefined || scored !== undefined || distilling || params.onPolicy !== undefined)) {
        const with_ = [
          ...(teacher !== undefined ? ["input 'teacher'"] : []),
          ...(scored !== undefined ? ["input 'scored'"] : []),
          ...(distilling ? ["param 'objective'"] : []),
          ...(params.onPolicy !== undefined ? ["param 'onPolicy'"] : [])
        ].join(", ")
        return yield* fail(
          ctx,
          `per-task loss weights apply to cross-entropy training; corpus '${corpus.name}' carries per-document loss weights (lm_tasks) but ${with_} ${with_.includes(",") ? "are" : "is"} set: train on the multi-task corpus without a teacher, stored scores or an objective, or distil on a corpus without weights`
        )
      }
      if (scored !== undefined) {
        const name = ctx.inputNodes.scored ?? "scored"
        if (teacher !== undefined) {
          return yield* fail(
            ctx,
            `inputs 'scored' and 'teacher' are both wired: the stored scores of '${name}' are the teacher, so lm_train takes one or the other; drop 'teacher' to distil the stored top-k, or drop 'scored' to distil the teacher's dense logits on the corpus`
          )
        }
        if (params.onPolicy !== undefined) {
          return yield* fail(
            ctx,
            `param 'onPolicy' samples the student and needs input 'teacher' to score its samples, while input 'scored' holds fixed samples scored beforehand: drop param 'onPolicy', or wire 'teacher' instead of 'scored'`
          )
        }
        if (scored.scores === undefined) {
          return yield* fail(
            ctx,
            `input 'scored' ('${name}') holds samples without scores: wire a teacher scorer into lm_generate's input 'teacher' (with param scoreTopK), or score the samples with an lm_score node and wire that`
          )
        }
        if (scored.scores.tailLogProb.length !== scored.tokens.length) {
          return yield* fail(ctx, `input 'scored' ('${name}') has scores for ${scored.scores.tailLogProb.length} positions but ${scored.tokens.length} generated tokens: rescore it with lm_score`)
        }
        const problem = tokenizerMismatch(`input 'scored' ('${name}')`, scored.tokenizer, tokenizer)
        if (problem !== undefined) return yield* fail(ctx, problem)
        if (!distilling) {
          return yield* fail(
            ctx,
            `input 'scored' is distilled by param 'objective', which ${objective === undefined ? "is missing" : "names divergence none"}: add e.g. objective: { divergence: forward_kl, alpha: 0.5 } (divergences: ${divergenceNames.join(", ")})`
          )
        }
      }
      if (teacher !== undefined && !distilling) {
        return yield* fail(ctx, "input 'teacher' is wired but param 'objective' names no divergence: add objective: { divergence: forward_kl, alpha: 0.5 }")
      }
      if (teacher === undefined && scored === undefined && distilling) {
        return yield* fail(
          ctx,
          `param 'objective' distils by ${objective.divergence} but input 'teacher' is not wired: wire a LanguageModel node to it, or scored samples (lm_generate with a teacher, lm_score) to input 'scored'`
        )
      }
      const onPolicy = params.onPolicy
      if (onPolicy !== undefined && !distilling) {
        return yield* fail(
          ctx,
          `param 'onPolicy' scores the student's samples with a teacher: wire input 'teacher' (a LanguageModel of the same tokenizer) and set param 'objective' (e.g. { divergence: generalized_jsd, beta: 0.5, alpha: 1 })`
        )
      }
      const T = params.sequenceLength ?? spec.context
      const teacherSpec = teacher !== undefined ? decodeTransformerSpec(teacher.spec) : undefined
      if (teacherSpec !== undefined && teacherSpec.context < T) {
        return yield* fail(ctx, `the teacher's context ${teacherSpec.context} is shorter than the training sequences of ${T} tokens: lower sequenceLength`)
      }
      const fromScores = scored !== undefined ? packScored(scored, T) : undefined
      const train = fromScores !== undefined ? fromScores.pack : packCorpus(tokenizer, corpus, "train", T)
      const validation = packCorpus(tokenizer, corpus, "validation", T)
      if (fromScores !== undefined && packedRows(train) === 0) {
        return yield* fail(ctx, `input 'scored' ('${ctx.inputNodes.scored ?? "scored"}') has no sample with a prompt token and a generated token to train on`)
      }
      if (packedRows(train) === 0) {
        return yield* fail(ctx, `corpus '${corpus.name}' has fewer than ${T + 1} train tokens: raise its limit or lower sequenceLength`)
      }
      const { type: _adamw, ...adam } = params.optimizer
      ctx.metric({ name: "train_tokens", value: fromScores !== undefined ? train.targets.filter((y) => y >= 0).length : train.inputs.length })
      if (fromScores !== undefined) {
        ctx.metric({ name: "scored_sequences", value: packedRows(train) })
        ctx.metric({ name: "scored_skipped", value: fromScores.skipped })
        ctx.metric({ name: "scored_tokens_cut", value: fromScores.cutTokens })
      }
      ctx.metric({ name: "validation_tokens", value: validation.inputs.length })
      const perTask = fromScores === undefined ? trainDocumentsPerTask(corpus) : undefined
      if (perTask !== undefined) for (const [task, n] of Object.entries(perTask)) ctx.metric({ name: `train_documents_${task}`, value: n })
      const { describeTokenObjective, describeTopkTokenObjective, onPolicyDistillationLoss, tokenDistillationLoss, topkTokenDistillationLoss } = yield* onRun(
        () => import("../../losses/tokenKd.js")
      )
      const { transformerFromWeights } = yield* onRun(() => import("../../models/Transformer.js"))
      const described = !distilling ? undefined : fromScores !== undefined ? describeTopkTokenObjective(objective, fromScores.scores.k) : describeTokenObjective(objective)
      ctx.info({
        loss:
          described !== undefined
            ? String(described.loss)
            : train.weights !== undefined
              ? "weighted next-token cross-entropy: sum over counted target tokens of the document's weight * NLL / counted target tokens"
              : "next-token cross-entropy, mean per counted target token",
        ...(perTask !== undefined && corpus.weights !== undefined
          ? { tasks: Object.fromEntries(Object.keys(perTask).map((task) => [task, { trainDocuments: perTask[task]!, weight: taskWeight(corpus, task) }])) }
          : {}),
        ...(described !== undefined && scored === undefined ? { objective: described, teacher: ctx.inputNodes.teacher ?? "teacher" } : {}),
        ...(described !== undefined && scored !== undefined
          ? {
              objective: described,
              scored: {
                node: ctx.inputNodes.scored ?? "scored",
                scorer: scored.scores!.scorer,
                generator: scored.generator,
                k: scored.scores!.k,
                sequences: packedRows(train),
                train: "the scored samples replace the corpus's train split; validation is next-token CE on its validation split"
              }
            }
          : {}),
        ...(init !== undefined ? { init: ctx.inputNodes.init ?? "init" } : {}),
        ...(onPolicy !== undefined && described !== undefined ? { onPolicy: describeOnPolicy(onPolicy, described) } : {}),
        optimizer: params.optimizer,
        backend: ctx.backend
      })
      const result = yield* Effect.tryPromise({
        try: async (signal) => {
          const teacherNet = teacherSpec !== undefined ? transformerFromWeights(teacherSpec, teacher!.weights) : undefined
          try {
            return await trainLanguageModel({
              spec,
              train,
              ...(packedRows(validation) > 0 ? { validation } : {}),
              optimizer: { type: "adam", ...adam },
              batchSize: params.batchSize,
              accumulate: params.accumulate,
              steps: params.steps,
              evalEvery: params.evalEvery ?? params.steps,
              warmupSteps: params.warmupSteps,
              minLrRatio: params.minLrRatio,
              ...(params.gradClip !== undefined ? { clipNorm: params.gradClip } : {}),
              seed: ctx.seed,
              checkpoint: params.checkpoint,
              signal,
              ...(init !== undefined ? { initial: init.weights } : {}),
              ...(distilling && teacherNet !== undefined
                ? {
                    teacher: teacherNet,
                    loss: (logits: tf.Tensor3D, targets: tf.Tensor2D, teacherLogits?: tf.Tensor3D) =>
                      tokenDistillationLoss(objective, logits, targets, teacherLogits)
                  }
                : {}),
              ...(distilling && fromScores !== undefined
                ? {
                    scored: {
                      scores: fromScores.scores,
                      loss: (logits: tf.Tensor3D, targets: tf.Tensor2D, topk: TokenTopk) => topkTokenDistillationLoss(objective, logits, targets, topk)
                    }
                  }
                : {}),
              ...(distilling && onPolicy !== undefined
                ? {
                    onPolicy: {
                      ...onPolicySettings(onPolicy),
                      loss: (logits: tf.Tensor3D, targets: tf.Tensor2D, teacherLogits: tf.Tensor3D) =>
                        onPolicyDistillationLoss(objective, logits, targets, teacherLogits)
                    }
                  }
                : {}),
              onRound: (r, step) =>
                ctx.progress({
                  done: step,
                  total: params.steps,
                  unit: "step",
                  facts: { loss: r.trainLoss, ...(r.valLoss !== undefined ? { val_loss: r.valLoss } : {}) }
                })
            })
          } finally {
            teacherNet?.dispose()
          }
        },
        catch: (cause) => fail(ctx, `training failed: ${cause instanceof Error ? cause.message : String(cause)}`, cause)
      })
      // A warm start's starting point: the init model's validation loss before any step.
      if (result.initialValLoss !== undefined) ctx.metric({ name: "val_loss", step: 0, value: result.initialValLoss })
      for (const r of result.history) {
        ctx.metric({ name: "train_loss", step: r.step, value: r.trainLoss })
        if (r.valLoss !== undefined) ctx.metric({ name: "val_loss", step: r.step, value: r.valLoss })
        if (r.valAccuracy !== undefined) ctx.metric({ name: "val_accuracy", step: r.step, value: r.valAccuracy })
        ctx.metric({ name: "tokens_per_second", step: r.step, value: r.tokensPerSecond })
      }
      const info = result.info as unknown as Record<string, string | number | boolean>
      // The loop counts evaluation rounds as epochs; in an LM's terms they are steps.
      const evalEvery = params.evalEvery ?? params.steps
      ctx.metric({ name: "steps", value: result.info.steps })
      ctx.metric({ name: "best_step", value: result.info.bestEpoch * evalEvery })
      ctx.metric({ name: "kept_step", value: result.info.epoch * evalEvery })
      if (result.info.selectedOn === "val_loss") ctx.metric({ name: "best_val_loss", value: result.info.bestValue })
      ctx.metric({ name: "mean_tokens_per_second", value: result.info.tokensPerSecond })
      ctx.metric({ name: "seconds", value: result.info.seconds })
      ctx.metric({ name: "params", value: parameterCount(result) })
      if (result.onPolicy !== undefined) {
        const r = result.onPolicy
        ctx.metric({ name: "on_policy_batches", value: r.batches })
        ctx.metric({ name: "on_policy_sequences", value: r.sequences })
        ctx.metric({ name: "mean_generated_tokens", value: r.sequences > 0 ? r.generatedTokens / r.sequences : 0 })
        ctx.metric({ name: "sampling_seconds", value: r.samplingSeconds })
      }
      ctx.info({ checkpoint: info })
      const model: LanguageModel = { _tag: "LanguageModel", spec: Schema.encodeSync(TransformerSpec)(spec), tokenizer, weights: result.weights, info }
      return { model }
    }).pipe(Effect.withSpan("lm_train.run", { attributes: { node: ctx.nodeId } }))
})
