/**
 * LLM-as-judge for parsed samples (distilling step by step's data, Hsieh et al. 2023; judging by an LM,
 * Zheng et al. 2023): a rubric, a prompt template (generation/Template.ts) over a sample's question,
 * prompt, rationale, answer and completion, is rendered per sample; a judge model replies; a score
 * pattern (a regex with one capture group around a number) reads the score from the reply; a score at
 * or above the threshold keeps the sample. A reply without a score, and a request that failed, drop
 * the sample with that reason; nothing here throws on what a judge says. Pure functions.
 */
import type { SampleOutcome } from "../teachers/Teacher.js"
import type { TemplatePart } from "./Template.js"
import { captureGroups, quoteText } from "./Rationale.js"
import { parseTemplate, renderParts, templateVariables } from "./Template.js"

/** "Score: 4", "score: 3.5", "Score:-1". */
export const DefaultScorePattern = "[Ss]core:\\s*(-?\\d+(?:\\.\\d+)?)"

/**
 * The variables a rubric may name: `question` (the record's own prompt where input 'corpus' has it, else
 * the prompt sampled), `prompt` (the prompt the teacher saw, few-shot examples and all), `rationale` and
 * `answer` (parsed), `completion` (the whole generated text) and `gold` (the gold answer, "" when unknown).
 */
export const JudgeVariables = ["question", "prompt", "rationale", "answer", "completion", "gold"] as const
export type JudgeVariable = (typeof JudgeVariables)[number]
export type JudgeColumns = Readonly<Record<JudgeVariable, string>>

/** What is wrong with a score pattern (not a regex, not exactly one capture group), or undefined. */
export const checkScorePattern = (pattern: string): string | undefined => {
  const groups = captureGroups(pattern)
  if (typeof groups !== "number") return `scorePattern /${pattern}/ is ${groups.error}`
  return groups === 1 ? undefined : `scorePattern /${pattern}/ has ${groups} capture groups; it needs exactly one, around the score (use (?:...) for the others)`
}

/** The rubric's parts, or what is wrong with it: its braces, or a variable that is not one of `JudgeVariables`. */
export const parseRubric = (rubric: string): { readonly parts: ReadonlyArray<TemplatePart> } | { readonly error: string } => {
  const parsed = parseTemplate(rubric)
  if ("error" in parsed) return { error: `rubric: ${parsed.error}` }
  const unknown = templateVariables(parsed.parts).find((v) => !(JudgeVariables as ReadonlyArray<string>).includes(v))
  if (unknown !== undefined) return { error: `rubric names {${unknown}}, which is not a judge variable; the valid ones are ${JudgeVariables.map((v) => `{${v}}`).join(", ")}` }
  return parsed
}

/** What is wrong with a judge's settings (rubric, score pattern), or undefined. */
export const checkJudge = (judge: { readonly rubric: string; readonly scorePattern?: string | undefined }): string | undefined => {
  const rubric = parseRubric(judge.rubric)
  if ("error" in rubric) return `judge: ${rubric.error}`
  const pattern = checkScorePattern(judge.scorePattern ?? DefaultScorePattern)
  return pattern !== undefined ? `judge: ${pattern}` : undefined
}

/** The judge's prompt for one sample. Assumes `parseRubric` accepted the rubric. */
export const renderRubric = (parts: ReadonlyArray<TemplatePart>, columns: JudgeColumns): string => {
  const rendered = renderParts(parts, columns)
  if ("missing" in rendered) throw new Error(`renderRubric: no column '${rendered.missing}'`)
  return rendered.text
}

/** The first match's captured number, or undefined when there is no match or it is not a number. */
export const parseScore = (reply: string, pattern: RegExp): number | undefined => {
  const m = new RegExp(pattern.source, pattern.flags.replace("g", "")).exec(reply)
  if (m === null || m[1] === undefined) return undefined
  const text = m[1].trim()
  const score = text === "" ? NaN : Number(text)
  return Number.isFinite(score) ? score : undefined
}

export interface Judgement {
  readonly keep: boolean
  /** The parsed score; null when there was none (no score in the reply, or the request failed). */
  readonly score: number | null
  /** The judge's reply; null when the request failed. */
  readonly reply: string | null
  readonly outcome: "scored" | "no_score" | "failed"
  /** `judge score 5 >= 4`, `judge: score 3 < 4`, `judge: no score in "..."`, `judge: failed: ...`. */
  readonly reason: string
}

/** A text as a short JSON string literal: at most `max` characters, then an ellipsis. */
export const quoteReply = (text: string): string => quoteText(text, 80)

/** One sample's verdict from the judge's outcome: kept at a score >= threshold, else dropped with the reason. */
export const judge = (outcome: SampleOutcome, pattern: RegExp, threshold: number): Judgement => {
  if (outcome._tag === "Failed") return { keep: false, score: null, reply: null, outcome: "failed", reason: `judge: failed: ${outcome.error}` }
  const reply = outcome.sample.text
  const score = parseScore(reply, pattern)
  if (score === undefined) return { keep: false, score: null, reply, outcome: "no_score", reason: `judge: no score in ${quoteReply(reply)}` }
  return score >= threshold
    ? { keep: true, score, reply, outcome: "scored", reason: `judge score ${score} >= ${threshold}` }
    : { keep: false, score, reply, outcome: "scored", reason: `judge: score ${score} < ${threshold}` }
}

/** True when there were judgements and none of them found a score in a reply (a pattern that never matches the judge). */
export const judgeNeverScored = (judgements: ReadonlyArray<Judgement>): boolean =>
  judgements.some((j) => j.outcome === "no_score") && judgements.every((j) => j.outcome !== "scored")
