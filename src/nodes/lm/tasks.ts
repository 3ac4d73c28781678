/**
 * The `lm_tasks` node kind: multi-task training data, as in "distilling step-by-step" (Hsieh et al.
 * 2023), where a student learns to predict the answer ("[answer] " + question) and to write the
 * rationale ("[rationale] " + question, loss weight lambda) at once, rationales being needed in
 * training only. It builds one prompt/completion TextCorpus from up to four input corpora (ports `a`,
 * required, and `b`, `c`, `d`, optional): each task takes its source port's documents (every split;
 * with `limit`, only the first `limit` train documents of each input) and makes prompt = prefix +
 * prompt, completion = " " + answer, " " + rationale, or the completion as is (data/multitask.ts). The
 * corpus records each document's task and loss weight, which `lm_train` reads as per-token weights of
 * its next-token cross-entropy.
 */
import { Effect, Schema } from "effect"
import type { TextCorpus } from "../../domain/Artifact.js"
import { SplitNames } from "../../domain/Artifact.js"
import type { MultitaskPort, TaskSpec } from "../../data/multitask.js"
import { multitaskCorpus, MultitaskPorts, TaskTargets } from "../../data/multitask.js"
import type { ExampleRow } from "../NodeKind.js"
import { defineKind } from "../NodeKind.js"
import { fail, PositiveInt } from "./common.js"

export const LmTask = Schema.Struct({
  name: Schema.propertySignature(Schema.NonEmptyTrimmedString).annotations({
    description: "The task's name, unique: it prefixes the output document ids (<name>:<source id>) and names its metrics"
  }),
  from: Schema.optionalWith(Schema.Literal(...MultitaskPorts), { default: () => "a" as const }).annotations({
    description: "The input port whose corpus the task reads (a, b, c or d)"
  }),
  prefix: Schema.optionalWith(Schema.String, { default: () => "" }).annotations({
    description: "Prepended to each prompt, e.g. '[answer] ' or '[rationale] '"
  }),
  target: Schema.propertySignature(Schema.Literal(...TaskTargets)).annotations({
    description: "The completion: answer (' ' + the document's answer), rationale (' ' + its rationale) or completion (its completion as is)"
  }),
  weight: Schema.optionalWith(Schema.Number.pipe(Schema.greaterThan(0)), { default: () => 1 }).annotations({
    description: "The loss weight of the task's tokens in lm_train's cross-entropy (e.g. lambda for the rationale task)"
  })
}).annotations({ identifier: "LmTask" })

export const LmTasksParams = Schema.Struct({
  tasks: Schema.propertySignature(Schema.NonEmptyArray(LmTask)).annotations({
    description: "The tasks, each document of each task's source becoming one document per task, tasks interleaved per source document"
  }),
  limit: Schema.optional(PositiveInt).annotations({
    description: "Use only the first limit train documents of each input (split order); validation and test are not limited. A sweep over it varies the training-set size"
  })
}).pipe(
  Schema.filter((p) => {
    const seen = new Set<string>()
    for (const task of p.tasks) {
      if (seen.has(task.name)) return `task name '${task.name}' is used twice: task names must be unique`
      seen.add(task.name)
    }
    return undefined
  }),
  Schema.annotations({ identifier: "LmTasksParams" })
)
export type LmTasksParams = typeof LmTasksParams.Type

export const LmTasksKind = defineKind({
  kind: "lm_tasks",
  version: 1,
  description:
    "Multi-task training data (distilling step-by-step, Hsieh et al. 2023): one prompt/completion corpus of several tasks over up to four corpora, e.g. '[answer] ' + question -> answer and '[rationale] ' + question -> rationale, each task's documents carrying its loss weight for lm_train's cross-entropy; limit cuts each input's train split",
  params: LmTasksParams,
  inputs: {
    a: { type: "TextCorpus", description: "the first prompt/completion corpus (a task dataset, lm_parse's corpus); tasks read it by default" },
    b: { type: "TextCorpus", optional: true, description: "a second corpus, read by tasks with from: b" },
    c: { type: "TextCorpus", optional: true, description: "a third corpus, read by tasks with from: c" },
    d: { type: "TextCorpus", optional: true, description: "a fourth corpus, read by tasks with from: d" }
  },
  outputs: { corpus: "TextCorpus" },
  run: (ctx) =>
    Effect.gen(function* () {
      const inputs: Partial<Record<MultitaskPort, TextCorpus>> = {}
      for (const port of MultitaskPorts) {
        const corpus = ctx.inputs[port] as TextCorpus | undefined
        if (corpus !== undefined) inputs[port] = corpus
      }
      const tasks: ReadonlyArray<TaskSpec> = ctx.params.tasks
      const built = multitaskCorpus(tasks, inputs, ctx.params.limit)
      if (built._tag === "Problem") return yield* fail(ctx, built.message)
      const { corpus } = built

      const rows: Array<ExampleRow> = built.tasks
        .flatMap((t) => t.decisions)
        .map((d, i) => ({ split: d.split, exampleId: i, label: -1, decision: d.kept ? "keep" : "drop", reason: d.reason }))
      ctx.examples(rows)
      for (const split of SplitNames) ctx.metric({ name: `${split}_documents`, value: corpus.splits[split].length })
      for (const t of built.tasks) {
        for (const split of SplitNames) ctx.metric({ name: `${t.name}_${split}_documents`, value: t.documents[split] })
        ctx.metric({ name: `${t.name}_skipped`, value: t.skipped.train + t.skipped.validation + t.skipped.test })
      }
      ctx.info({
        tasks: built.tasks.map((t) => ({
          name: t.name,
          from: ctx.inputNodes[t.from] ?? t.from,
          target: t.target,
          weight: t.weight,
          documents: t.documents,
          skipped: t.skipped
        })),
        ...(ctx.params.limit !== undefined ? { limit: ctx.params.limit } : {})
      })
      return { corpus }
    })
})
