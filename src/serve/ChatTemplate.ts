/**
 * The chat template of `serve`: Distillery's models are trained on plain text, with no chat tokens, so
 * a conversation becomes plain text too, one line per message and an open turn for the answer:
 * ```
 *   system: You are terse.
 *   user: Hello
 *   assistant:
 * ```
 * Message contents are a string or a list of text parts (joined); other parts (images, audio) are refused.
 */

export const chatRoles = ["system", "developer", "user", "assistant", "tool"] as const
export type ChatRole = (typeof chatRoles)[number]

export interface ChatMessage {
  readonly role: ChatRole
  readonly content: string
}

/** The prompt text of a conversation: `<role>: <content>\n` per message, then `assistant:`. */
export const renderChat = (messages: ReadonlyArray<ChatMessage>): string =>
  `${messages.map((m) => `${m.role}: ${m.content}\n`).join("")}assistant:`

/** A message as a request gives it, checked; a string says what is wrong with it. */
export const chatMessageOf = (value: unknown): ChatMessage | string => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "must be an object with 'role' and 'content'"
  const m = value as Record<string, unknown>
  if (typeof m.role !== "string" || !(chatRoles as ReadonlyArray<string>).includes(m.role)) {
    return `'role' must be one of ${chatRoles.join(", ")}; got ${JSON.stringify(m.role)}`
  }
  const role = m.role as ChatRole
  if (typeof m.content === "string") return { role, content: m.content }
  if (m.content === null || m.content === undefined) return role === "assistant" ? { role, content: "" } : "'content' must be a string or a list of text parts"
  if (!Array.isArray(m.content)) return "'content' must be a string or a list of text parts"
  const texts: Array<string> = []
  for (const part of m.content as Array<unknown>) {
    const p = part as Record<string, unknown> | null
    if (typeof p !== "object" || p === null || p.type !== "text" || typeof p.text !== "string") {
      return `'content' parts must be { "type": "text", "text": "..." }; this model reads text only`
    }
    texts.push(p.text)
  }
  return { role, content: texts.join("") }
}
