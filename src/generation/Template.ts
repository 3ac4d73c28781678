/**
 * Prompt templates for sampling a teacher: `Q: {prompt}\nA:` whose `{variables}` name a record's
 * columns (`prompt`, `answer`, `rationale`, `id`, any metadata key), with few-shot examples rendered by
 * the same template followed by their completion, then the row's own prompt, all joined by a separator
 * (chain-of-thought prompting, Wei et al. 2022, is such a template with rationale-bearing completions).
 * `{{` and `}}` are literal braces. Pure functions: parsing, checking and rendering.
 */

export interface PromptTemplate {
  /** The template, e.g. "Q: {prompt}\nA:". */
  readonly text: string
  /** Worked examples, each the template's variables and its `completion`, rendered before the row's prompt. */
  readonly fewShot?: ReadonlyArray<Readonly<Record<string, string>> & { readonly completion: string }>
  /** Between the few-shot examples and the row's prompt; default a blank line. */
  readonly separator?: string
}

export type TemplatePart = { readonly literal: string } | { readonly variable: string }

const VariableName = /^[A-Za-z_][\w.-]*$/

/** A template's parts, or what is wrong with its braces (column counted from 1). */
export const parseTemplate = (text: string): { readonly parts: ReadonlyArray<TemplatePart> } | { readonly error: string } => {
  const parts: Array<TemplatePart> = []
  let literal = ""
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    if ((c === "{" || c === "}") && text[i + 1] === c) {
      literal += c
      i += 2
      continue
    }
    if (c === "}") return { error: `a lone '}' at column ${i + 1}: write '}}' for a literal brace` }
    if (c === "{") {
      const close = text.indexOf("}", i + 1)
      const name = close < 0 ? "" : text.slice(i + 1, close)
      if (close < 0 || !VariableName.test(name)) {
        return {
          error: `'{' at column ${i + 1} does not open a variable ({name}, a letter or _ then letters, digits, _ . -): write '{{' for a literal brace`
        }
      }
      if (literal !== "") parts.push({ literal })
      literal = ""
      parts.push({ variable: name })
      i = close + 1
      continue
    }
    literal += c
    i++
  }
  if (literal !== "") parts.push({ literal })
  return { parts }
}

/** The variables a template names, each once, in order of first use. */
export const templateVariables = (parts: ReadonlyArray<TemplatePart>): ReadonlyArray<string> => [
  ...new Set(parts.flatMap((p) => ("variable" in p ? [p.variable] : [])))
]

/** The template filled from `columns`, or the first variable `columns` lacks. */
export const renderParts = (
  parts: ReadonlyArray<TemplatePart>,
  columns: Readonly<Record<string, string>>
): { readonly text: string } | { readonly missing: string } => {
  let text = ""
  for (const p of parts) {
    if ("literal" in p) text += p.literal
    else {
      const value = Object.hasOwn(columns, p.variable) ? columns[p.variable] : undefined
      if (value === undefined) return { missing: p.variable }
      text += value
    }
  }
  return { text }
}

/** What is wrong with a template (its braces, or a few-shot example without a variable it names), or undefined. */
export const checkTemplate = (template: PromptTemplate): string | undefined => {
  const parsed = parseTemplate(template.text)
  if ("error" in parsed) return `template text: ${parsed.error}`
  for (const [i, example] of (template.fewShot ?? []).entries()) {
    const rendered = renderParts(parsed.parts, example)
    if ("missing" in rendered) {
      return `template fewShot[${i}] has no '${rendered.missing}', which the template names; it has ${Object.keys(example).join(", ")}`
    }
  }
  return undefined
}

/** A record's columns as template variables: metadata keys first, then id, prompt, answer and rationale where known. */
export const recordColumns = (record: {
  readonly id: string
  readonly prompt: string
  readonly answer?: string | null | undefined
  readonly rationale?: string | null | undefined
  readonly metadata?: Readonly<Record<string, unknown>> | undefined
}): Record<string, string> => {
  const columns: Record<string, string> = {}
  for (const [key, value] of Object.entries(record.metadata ?? {})) {
    if (value === null || value === undefined) continue
    columns[key] = typeof value === "string" ? value : typeof value === "object" ? JSON.stringify(value) : String(value)
  }
  columns.id = record.id
  columns.prompt = record.prompt
  if (record.answer !== null && record.answer !== undefined) columns.answer = record.answer
  if (record.rationale !== null && record.rationale !== undefined) columns.rationale = record.rationale
  return columns
}

/**
 * The prompt for one record: each few-shot example rendered by the template followed by its completion,
 * then the record rendered, joined by the separator; or the variable the record lacks, with its columns.
 * Assumes `checkTemplate(template)` passed.
 */
export const renderPrompt = (
  template: PromptTemplate,
  columns: Readonly<Record<string, string>>
): { readonly text: string } | { readonly missing: string; readonly available: ReadonlyArray<string> } => {
  const parsed = parseTemplate(template.text)
  if ("error" in parsed) throw new Error(`renderPrompt: ${parsed.error}`)
  const shots = (template.fewShot ?? []).map((example) => {
    const r = renderParts(parsed.parts, example)
    if ("missing" in r) throw new Error(`renderPrompt: few-shot example lacks '${r.missing}'`)
    return r.text + example.completion
  })
  const own = renderParts(parsed.parts, columns)
  if ("missing" in own) return { missing: own.missing, available: Object.keys(columns) }
  return { text: [...shots, own.text].join(template.separator ?? "\n\n") }
}
