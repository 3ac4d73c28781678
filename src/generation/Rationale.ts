/**
 * Rationale and answer from a teacher's generated text (distilling step by step, Hsieh et al. 2023;
 * self-consistency, Wang et al. 2023): an answer pattern (a regex with one capture group) finds the
 * answer, the text before its first match is the rationale, and the answer is normalised as a number
 * ("1,234" -> "1234", "14.0" -> "14"), a label (case and surrounding punctuation) or text (whitespace),
 * so that the n samples of a prompt can vote and an answer can be compared with the gold one.
 * Pure functions.
 */

export const Normalisations = ["number", "label", "text"] as const
export type Normalisation = (typeof Normalisations)[number]

/** "The answer is 14." / "The answer is: (B)" -> "14" / "(B)": the rest of the line, less one trailing period. */
export const DefaultAnswerPattern = "[Tt]he answer is:?[ \\t]*([^\\n]*?)\\.?[ \\t]*(?:\\n|$)"

/** The number of capture groups of a regular expression, or what is wrong with it. */
export const captureGroups = (pattern: string): number | { readonly error: string } => {
  try {
    return new RegExp(`${pattern}|`).exec("")!.length - 1
  } catch (e) {
    return { error: `not a regular expression: ${e instanceof Error ? e.message : String(e)}` }
  }
}

/** What is wrong with an answer pattern (not a regex, not exactly one capture group), or undefined. */
export const checkAnswerPattern = (pattern: string): string | undefined => {
  const groups = captureGroups(pattern)
  if (typeof groups !== "number") return groups.error
  return groups === 1 ? undefined : `it has ${groups} capture groups; it needs exactly one, around the answer (use (?:...) for the others)`
}

/** A text for a message: JSON-quoted, cut to `max` characters with an ellipsis. */
export const quoteText = (s: string, max = 60): string => JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s)

/** A number's canonical text: no thousands separators, sign, leading or trailing zeros; undefined when there is none. */
export const normaliseNumber = (raw: string): string | undefined => {
  const m = /(-|−)?\s*\$?\s*(\d[\d,]*(?:\.\d+)?|\.\d+)/.exec(raw.replace(/(\d)[ _'](?=\d{3}\b)/g, "$1"))
  if (m === null) return undefined
  const body = m[2]!
  if (/,/.test(body) && !/^\d{1,3}(,\d{3})*(\.\d+)?$/.test(body)) return undefined
  let [int, frac = ""] = body.replace(/,/g, "").split(".") as [string, string?]
  int = int.replace(/^0+(?=\d)/, "")
  if (int === "") int = "0"
  frac = frac.replace(/0+$/, "")
  const text = frac === "" ? int : `${int}.${frac}`
  return m[1] !== undefined && text !== "0" ? `-${text}` : text
}

const Surrounding = /^[\s"'`“”‘’()[\]{}<>*_.,:;!?]+|[\s"'`“”‘’()[\]{}<>*_.,:;!?]+$/g

/** An answer as `how` compares it, or undefined when nothing of that kind is in it. */
export const normaliseAnswer = (raw: string, how: Normalisation): string | undefined => {
  if (how === "number") return normaliseNumber(raw)
  const text = raw.trim().replace(/\s+/g, " ")
  const out = how === "label" ? text.replace(Surrounding, "").toLowerCase() : text.replace(/\.$/, "").trim()
  return out === "" ? undefined : out
}

export type Parsed =
  | { readonly ok: true; readonly answer: string; readonly raw: string; readonly rationale: string }
  | { readonly ok: false; readonly matched: boolean; readonly reason: string }

/** The first match of `pattern` in `text`: its normalised answer and the rationale before it, or why none. */
export const parseRationale = (text: string, pattern: RegExp, how: Normalisation): Parsed => {
  const m = new RegExp(pattern.source, pattern.flags.replace("g", "")).exec(text)
  if (m === null) return { ok: false, matched: false, reason: "no match of the answer pattern" }
  const raw = m[1] ?? ""
  const answer = normaliseAnswer(raw, how)
  if (answer === undefined) return { ok: false, matched: true, reason: raw.trim() === "" ? "empty answer" : `no ${how} in answer ${quoteText(raw)}` }
  return { ok: true, answer, raw, rationale: text.slice(0, m.index).trim() }
}

export interface Majority {
  /** The most frequent answer (the first to reach that count on a tie); undefined when no sample parsed. */
  readonly answer: string | undefined
  readonly votes: number
  /** votes / the prompt's samples, unparseable ones included. */
  readonly agreement: number
}

/** Self-consistency over one prompt's samples: the majority answer and its share of them. */
export const majority = (answers: ReadonlyArray<string | undefined>): Majority => {
  const counts = new Map<string, number>()
  let best: string | undefined
  let votes = 0
  for (const a of answers) {
    if (a === undefined) continue
    const c = (counts.get(a) ?? 0) + 1
    counts.set(a, c)
    if (c > votes) (best = a), (votes = c)
  }
  return { answer: best, votes, agreement: answers.length > 0 ? votes / answers.length : 0 }
}
