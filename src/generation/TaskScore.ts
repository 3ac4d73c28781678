/**
 * Scoring a student's greedy output on one task of a multi-task (distilling step by step, Hsieh et
 * al. 2023) model: an `answer` task's whole output is the answer (exact match after normalisation,
 * generation/Rationale.ts), a `completion` task's output is a chain of thought whose answer an answer
 * pattern finds, and a `rationale` task's output is compared with a reference rationale by normalised
 * exact match, token-level F1 (SQuAD's, Rajpurkar et al. 2016) and sentence BLEU-4. Pure functions.
 */
import { bleu, ngramCounts } from "./Diversity.js"
import type { Normalisation } from "./Rationale.js"
import { normaliseAnswer, parseRationale, quoteText } from "./Rationale.js"

/** The generated text up to (not including) its first newline, trimmed: what a task's output is. */
export const firstLine = (text: string): string => {
  const cut = text.indexOf("\n")
  return (cut < 0 ? text : text.slice(0, cut)).trim()
}

/** A gold answer as `how` compares it: its normal form, else the trimmed text (an answer that has no number, say). */
export const normaliseGold = (gold: string, how: Normalisation): string => normaliseAnswer(gold, how) ?? gold.trim()

export interface AnswerScore {
  readonly correct: boolean
  /** The normalised answer found in the output; undefined when none. */
  readonly answer: string | undefined
  readonly gold: string
  /** Why it is wrong (or "correct"). */
  readonly reason: string
}

const verdict = (answer: string | undefined, gold: string, unparsed: string): AnswerScore =>
  answer === undefined
    ? { correct: false, answer, gold, reason: `${unparsed}, gold ${gold}` }
    : answer === gold
    ? { correct: true, answer, gold, reason: "correct" }
    : { correct: false, answer, gold, reason: `wrong answer: got ${answer}, gold ${gold}` }

/** Target `answer`: the whole output, normalised, against the gold answer normalised. */
export const scoreAnswer = (output: string, gold: string, how: Normalisation): AnswerScore =>
  verdict(normaliseAnswer(output, how), normaliseGold(gold, how), output.trim() === "" ? "empty output" : `no ${how} in output ${quoteText(output)}`)

/** Target `completion`: the answer `pattern` finds in the output (a chain of thought), against the gold answer. */
export const scoreCompletion = (output: string, gold: string, pattern: RegExp, how: Normalisation): AnswerScore => {
  const parsed = parseRationale(output, pattern, how)
  return verdict(parsed.ok ? parsed.answer : undefined, normaliseGold(gold, how), parsed.ok ? "" : `unparseable: ${parsed.reason}`)
}

/** A rationale's tokens as F1 counts them: lower case, split on whitespace, punctuation stripped from each end, empty ones dropped. */
export const rationaleTokens = (text: string): Array<string> =>
  text
    .toLowerCase()
    .split(/\s+/)
    .map((t) => t.replace(/^[\p{P}\p{S}]+|[\p{P}\p{S}]+$/gu, ""))
    .filter((t) => t !== "")

/**
 * Token-level F1 of a prediction against a reference (SQuAD's): the multiset overlap of their tokens
 * (`rationaleTokens`), precision over the prediction's, recall over the reference's. Both empty: 1;
 * one empty: 0.
 */
export const tokenF1 = (prediction: string, reference: string): number => {
  const p = rationaleTokens(prediction)
  const r = rationaleTokens(reference)
  if (p.length === 0 || r.length === 0) return p.length === r.length ? 1 : 0
  const counts = new Map<string, number>()
  for (const t of r) counts.set(t, (counts.get(t) ?? 0) + 1)
  let common = 0
  for (const t of p) {
    const c = counts.get(t) ?? 0
    if (c > 0) (common++, counts.set(t, c - 1))
  }
  if (common === 0) return 0
  const precision = common / p.length
  const recall = common / r.length
  return (2 * precision * recall) / (precision + recall)
}

/** Whether two rationales are the same text: whitespace collapsed, a trailing period dropped. */
export const rationaleExact = (prediction: string, reference: string): boolean =>
  (normaliseAnswer(prediction, "text") ?? "") === (normaliseAnswer(reference, "text") ?? "")

/**
 * Sentence BLEU-4 of a prediction against references over `rationaleTokens` (Diversity.ts's `bleu`,
 * the one behind self-BLEU). 0 for an empty prediction or no reference.
 */
export const sentenceBleu = (prediction: string, references: ReadonlyArray<string>, maxN = 4): number => {
  const hyp = rationaleTokens(prediction)
  if (hyp.length === 0 || references.length === 0) return 0
  return bleu(ngramCounts(hyp, maxN), references.map((r) => ngramCounts(rationaleTokens(r), maxN)), maxN)
}

export interface RationaleScore {
  /** Against the best-matching reference (the highest F1) where there are several. */
  readonly exact: boolean
  readonly f1: number
  readonly bleu: number
  readonly reason: string
}

/** Target `rationale`: the output against every reference rationale of its example, the best of them. */
export const scoreRationale = (output: string, references: ReadonlyArray<string>): RationaleScore => {
  const exact = references.some((r) => rationaleExact(output, r))
  const f1 = Math.max(0, ...references.map((r) => tokenF1(output, r)))
  const bleu = sentenceBleu(output, references)
  const best = references.find((r) => tokenF1(output, r) === f1) ?? references[0] ?? ""
  const reason = exact ? "exact" : output.trim() === "" ? "empty output" : `f1 ${Math.round(f1 * 1000) / 1000} against ${quoteText(best)}`
  return { exact, f1, bleu, reason }
}

/**
 * The source example id of a document: a corpus record's own id, or for an `lm_parse`/`lm_filter`
 * corpus (ids `<promptId>#<sample>`) its metadata's promptId, else the id less a `#<n>` suffix.
 */
export const sourceIdOf = (id: string, metadata: Readonly<Record<string, unknown>> | undefined): string => {
  const promptId = metadata?.promptId
  if (typeof promptId === "string") return promptId
  return id.replace(/#\d+$/, "")
}

/** The mean of some numbers; NaN for none. */
export const mean = (xs: ReadonlyArray<number>): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length)
