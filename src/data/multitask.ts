/**
 * Multi-task prompt/completion corpora, the data of "distilling step-by-step" (Hsieh et al. 2023): a
 * student learns to predict the answer (prompts prefixed "[answer] ") and to write the rationale
 * (prefixed "[rationale] ", its loss weighted by lambda) from the same questions, the rationales
 * being needed in training only. `multitaskCorpus` builds one TextCorpus out of up to four input
 * corpora: per task and per document of its source corpus (every split), prompt = prefix + the
 * document's prompt and completion = " " + its answer, " " + its rationale, or its completion as is.
 * A document without the field a task needs is skipped for that task and counted.
 *
 * Each split's documents interleave the tasks per source position (document 1 of task 1, document 1
 * of task 2, document 2 of task 1, ...), so packing mixes the tasks. Output ids are `<task>:<source
 * id>`; answers, rationales and metadata (plus `task`) are carried over, and the corpus records each
 * document's task and its loss weight (`tasks`, `weights`), which lm_train's cross-entropy reads.
 */
import type { SplitName, TextCorpus } from "../domain/Artifact.js"
import { SplitNames } from "../domain/Artifact.js"

/** The input ports of lm_tasks, in order. */
export const MultitaskPorts = ["a", "b", "c", "d"] as const
export type MultitaskPort = (typeof MultitaskPorts)[number]

export const TaskTargets = ["answer", "rationale", "completion"] as const
export type TaskTarget = (typeof TaskTargets)[number]

export interface TaskSpec {
  readonly name: string
  readonly from: MultitaskPort
  readonly prefix: string
  readonly target: TaskTarget
  readonly weight: number
}

/** Documents per split. */
export type SplitCounts = { readonly [S in SplitName]: number }

/** What one task made: its documents per split, and the source documents skipped for lack of its field. */
export interface TaskSummary {
  readonly name: string
  readonly from: MultitaskPort
  readonly target: TaskTarget
  readonly weight: number
  readonly documents: SplitCounts
  readonly skipped: SplitCounts
  /** Per source document considered, in split order: whether it was used and the output id or why not. */
  readonly decisions: ReadonlyArray<{ readonly split: SplitName; readonly source: string; readonly kept: boolean; readonly reason: string }>
}

export type MultitaskResult =
  | { readonly _tag: "Built"; readonly corpus: TextCorpus; readonly tasks: ReadonlyArray<TaskSummary> }
  | { readonly _tag: "Problem"; readonly message: string }

const fieldOf = { answer: "answers", rationale: "rationales", completion: "completions" } as const
const singular = { answer: "an answer", rationale: "a rationale", completion: "a completion" } as const

/** Why a task whose source lacks a field altogether made no train documents, and what to wire instead. */
const missingField = (port: MultitaskPort, target: TaskTarget): string =>
  target === "rationale"
    ? `input '${port}' has no rationales: wire lm_parse's corpus or a task dataset with gold rationales (text with source: task)`
    : target === "answer"
      ? `input '${port}' has no answers: wire lm_parse's corpus, a task dataset (text with source: task) or records with an answer column`
      : `input '${port}' has no completions: wire a prompt/completion corpus`

/** The train documents of `corpus` used (the first `limit` in split order), and its other splits as they are. */
const documentsOf = (corpus: TextCorpus, split: SplitName, limit: number | undefined): Int32Array =>
  split === "train" && limit !== undefined ? corpus.splits.train.subarray(0, limit) : corpus.splits[split]

/**
 * The multi-task corpus of `tasks` over the wired `inputs` (each task reads its `from` port), each input's
 * train split cut to its first `limit` documents. A problem (a task's port not wired, a source without
 * prompts, a task without train documents) is returned in words.
 */
export const multitaskCorpus = (
  tasks: ReadonlyArray<TaskSpec>,
  inputs: Partial<Record<MultitaskPort, TextCorpus>>,
  limit?: number
): MultitaskResult => {
  const problem = (message: string): MultitaskResult => ({ _tag: "Problem", message })
  if (tasks.length === 0) return problem("param 'tasks' is empty: give at least one task")
  const seen = new Set<string>()
  for (const task of tasks) {
    if (seen.has(task.name)) return problem(`task name '${task.name}' is used twice: task names must be unique (they prefix the document ids)`)
    seen.add(task.name)
    if (!(task.weight > 0)) return problem(`task '${task.name}' has weight ${task.weight}: weights must be above 0`)
    const corpus = inputs[task.from]
    if (corpus === undefined) return problem(`task '${task.name}' reads input '${task.from}', which is not wired: wire a TextCorpus node to it, or set the task's 'from'`)
    if (corpus.prompts === undefined) {
      return problem(
        `task '${task.name}': input '${task.from}' ('${corpus.name}') has no prompts: lm_tasks needs a prompt/completion corpus (text with source: task, records with prompt and completion columns, or lm_parse's corpus)`
      )
    }
  }

  const ids: Array<string> = []
  const prompts: Array<string> = []
  const completions: Array<string> = []
  const answers: Array<string | null> = []
  const rationales: Array<string | null> = []
  const metadata: Array<Record<string, unknown>> = []
  const weights: Array<number> = []
  const taskOf: Array<string> = []
  const splits: Record<SplitName, Array<number>> = { train: [], validation: [], test: [] }
  const summaries = tasks.map((task) => ({
    task,
    documents: { train: 0, validation: 0, test: 0 } as Record<SplitName, number>,
    skipped: { train: 0, validation: 0, test: 0 } as Record<SplitName, number>,
    decisions: [] as Array<TaskSummary["decisions"][number]>
  }))

  for (const split of SplitNames) {
    const sources = tasks.map((task) => documentsOf(inputs[task.from]!, split, limit))
    const longest = Math.max(0, ...sources.map((s) => s.length))
    for (let i = 0; i < longest; i++) {
      tasks.forEach((task, k) => {
        const docs = sources[k]!
        if (i >= docs.length) return
        const d = docs[i]!
        const corpus = inputs[task.from]!
        const summary = summaries[k]!
        const field = corpus[fieldOf[task.target]]
        const value = field?.[d]
        if (value === undefined || value === null) {
          summary.skipped[split]++
          summary.decisions.push({
            split,
            source: corpus.ids[d]!,
            kept: false,
            reason: `${task.name}: ${field === undefined ? `input '${task.from}' has no ${fieldOf[task.target]}` : `no ${task.target}`}`
          })
          return
        }
        const id = `${task.name}:${corpus.ids[d]!}`
        splits[split].push(ids.length)
        ids.push(id)
        prompts.push(task.prefix + corpus.prompts![d]!)
        completions.push(task.target === "completion" ? value : ` ${value}`)
        answers.push(corpus.answers?.[d] ?? null)
        rationales.push(corpus.rationales?.[d] ?? null)
        metadata.push({ ...(corpus.metadata?.[d] ?? {}), task: task.name })
        weights.push(task.weight)
        taskOf.push(task.name)
        summary.documents[split]++
        summary.decisions.push({ split, source: corpus.ids[d]!, kept: true, reason: `${task.name}: ${id}` })
      })
    }
  }

  for (const { task, documents, skipped } of summaries) {
    if (documents.train > 0) continue
    const corpus = inputs[task.from]!
    const field = corpus[fieldOf[task.target]]
    const available = documentsOf(corpus, "train", limit).length
    const why =
      available === 0
        ? `input '${task.from}' ('${corpus.name}') has no train documents`
        : field === undefined
          ? missingField(task.from, task.target)
          : `none of the ${skipped.train} train documents of input '${task.from}' ('${corpus.name}') has ${singular[task.target]}`
    return problem(`task '${task.name}' (from input '${task.from}', target ${task.target}) has no train documents: ${why}`)
  }

  const inputNames = [...new Set(tasks.map((t) => inputs[t.from]!.name))]
  const corpus: TextCorpus = {
    _tag: "TextCorpus",
    name: `${tasks.map((t) => t.name).join(" + ")} of ${inputNames.join(", ")}`,
    ids,
    texts: prompts.map((p, i) => p + completions[i]!),
    prompts,
    completions,
    ...(answers.some((a) => a !== null) ? { answers } : {}),
    ...(rationales.some((r) => r !== null) ? { rationales } : {}),
    metadata,
    weights,
    tasks: taskOf,
    splits: { train: Int32Array.from(splits.train), validation: Int32Array.from(splits.validation), test: Int32Array.from(splits.test) }
  }
  return {
    _tag: "Built",
    corpus,
    tasks: summaries.map(({ task, documents, skipped, decisions }) => ({
      name: task.name,
      from: task.from,
      target: task.target,
      weight: task.weight,
      documents,
      skipped,
      decisions
    }))
  }
}

/** Training documents per task of a corpus that records its tasks (lm_tasks); undefined otherwise. */
export const trainDocumentsPerTask = (corpus: TextCorpus): Record<string, number> | undefined => {
  if (corpus.tasks === undefined) return undefined
  const counts: Record<string, number> = {}
  for (const d of corpus.splits.train) {
    const task = corpus.tasks[d]!
    counts[task] = (counts[task] ?? 0) + 1
  }
  return counts
}
