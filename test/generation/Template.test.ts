/** Prompt templates: parsing (literal braces, bad braces), few-shot rendering, record columns, a missing column. */
import { assert, describe, it } from "@effect/vitest"
import { checkTemplate, parseTemplate, recordColumns, renderPrompt, templateVariables } from "../../src/generation/Template.js"

describe("prompt templates", () => {
  it("parses variables and literal braces, and names a bad brace's column", () => {
    const parsed = parseTemplate("Q: {prompt} {{x}} ({meta.level})\nA:")
    assert.isTrue("parts" in parsed)
    if (!("parts" in parsed)) return
    assert.deepStrictEqual(templateVariables(parsed.parts), ["prompt", "meta.level"])
    const r = renderPrompt({ text: "Q: {prompt} {{x}} ({meta.level})\nA:" }, { prompt: "2+2?", "meta.level": "easy" })
    assert.deepStrictEqual(r, { text: "Q: 2+2? {x} (easy)\nA:" })
    const bad = parseTemplate("Q: {prompt")
    assert.isTrue("error" in bad && bad.error.includes("column 4"))
    assert.include(checkTemplate({ text: "a } b" }) ?? "", "lone '}' at column 3")
    assert.include(checkTemplate({ text: "{1x}" }) ?? "", "does not open a variable")
  })

  it("renders the few-shot examples by the template with their completion, then the row's prompt", () => {
    const template = {
      text: "Q: {prompt}\nA:",
      fewShot: [
        { prompt: "1+1?", completion: " 1 plus 1 is 2. The answer is 2." },
        { prompt: "2+3?", completion: " The answer is 5." }
      ],
      separator: "\n\n"
    }
    assert.isUndefined(checkTemplate(template))
    assert.deepStrictEqual(renderPrompt(template, recordColumns({ id: "r1", prompt: "3+4?", answer: "7" })), {
      text: "Q: 1+1?\nA: 1 plus 1 is 2. The answer is 2.\n\nQ: 2+3?\nA: The answer is 5.\n\nQ: 3+4?\nA:"
    })
    // The default separator is a blank line.
    assert.deepStrictEqual(renderPrompt({ text: "{prompt}", fewShot: [{ prompt: "a", completion: "b" }] }, { prompt: "c" }), { text: "ab\n\nc" })
  })

  it("takes metadata keys as columns and reports a missing variable with the columns there are", () => {
    const columns = recordColumns({ id: "r2", prompt: "Is it?", answer: null, rationale: "because", metadata: { subject: "logic", level: 3, prompt: "shadowed" } })
    assert.deepStrictEqual(columns, { subject: "logic", level: "3", prompt: "Is it?", id: "r2", rationale: "because" })
    assert.deepStrictEqual(renderPrompt({ text: "[{subject}/{level}] {prompt} Answer: {answer}" }, columns), {
      missing: "answer",
      available: ["subject", "level", "prompt", "id", "rationale"]
    })
    assert.include(checkTemplate({ text: "{prompt} {topic}", fewShot: [{ prompt: "p", completion: "c" }] }) ?? "", "fewShot[0] has no 'topic'")
  })
})
