/**
 * Built-in reasoning tasks: problems generated from a seed, as many as asked, each with a gold
 * rationale written out step by step and an answer that can be checked exactly. Example `i` is drawn
 * from its own seed, `deriveSeed(seed, "task", task, i)`, so the first 100 of 1,000 examples are the
 * 100 examples of a run that asks for 100.
 *
 * Every example is a prompt/completion record: the prompt is the question followed by `ANSWER_CUE`
 * ("\nAnswer:"), the completion is `" <rationale> The answer is <answer>."`, so a language model
 * trained on the text learns to write the rationale and then the answer.
 *
 * - `arithmetic`: multi-step word problems ("Tom has 12 apples. He buys 7 more. He gives away 5. How
 *   many apples does Tom have now?"), `steps` operations of `digits`-digit operands; the rationale is
 *   one equation per step ("12 + 7 = 19. 19 - 5 = 14."), the answer the final number.
 * - `last_letters`: the last letters of `words` names concatenated (Wei et al. 2022); the rationale
 *   spells each word's last letter, the answer is the concatenation.
 * - `coin_flip`: a coin starts heads up and each of `people` people flips it or does not (Wei et al.
 *   2022); the rationale tracks the coin person by person, the answer is "yes" (still heads up) or "no".
 * - `compare`: is one `digits`-digit number greater than, less than or equal to another; a
 *   classification task whose answer is one of `COMPARE_LABELS`; the rationale names the first digit
 *   where the numbers differ.
 */
import { deriveSeed, makeRng, type Rng } from "../domain/Random.js"

export const TaskNames = ["arithmetic", "last_letters", "coin_flip", "compare"] as const
export type TaskName = (typeof TaskNames)[number]

/** What follows every question in a prompt; the completion starts right after it. */
export const ANSWER_CUE = "\nAnswer:"

/** The labels of the `compare` task. */
export const COMPARE_LABELS = ["greater", "less", "equal"] as const

/** The difficulty params a task reads; absent ones take `TaskDefaults`. */
export interface TaskDifficulty {
  /** arithmetic: operations per problem. */
  readonly steps?: number
  /** arithmetic, compare: digits per operand. */
  readonly digits?: number
  /** last_letters: words per problem. */
  readonly words?: number
  /** coin_flip: people who flip or do not flip. */
  readonly people?: number
}

/**
 * Which params each task reads, with their defaults. How hard a setting is depends on the model: in
 * pipelines/step-by-step.yaml (arithmetic, steps 1, digits 1) a 652k-parameter teacher trained on 3,800
 * problems answers 98% and 125k-parameter students trained on 100-800 answer 7-64% (README); at steps 2,
 * such students trained for 400 steps on 800 problems answered 4-12% while the teacher reached 98%.
 */
export const TaskDefaults: { readonly [T in TaskName]: Readonly<Record<string, number>> } = {
  arithmetic: { steps: 2, digits: 2 },
  last_letters: { words: 3 },
  coin_flip: { people: 4 },
  compare: { digits: 3 }
}

export interface TaskExample {
  /** `<task>-<index, six digits>`. */
  readonly id: string
  readonly question: string
  /** The question followed by `ANSWER_CUE`. */
  readonly prompt: string
  /** `" <rationale> The answer is <answer>."` */
  readonly completion: string
  readonly rationale: string
  readonly answer: string
  /** The task, its params for this example and the values drawn (operands, words, flips). */
  readonly metadata: Readonly<Record<string, unknown>>
}

const NAMES = [
  "Tom", "Anna", "Ravi", "Mei", "Carlos", "Fatima", "John", "Olga", "Kenji", "Lucia", "Omar", "Grace", "Ivan", "Priya",
  "Liam", "Sofia", "Noah", "Amara", "Diego", "Elena", "Hassan", "Ingrid", "Jamal", "Keiko", "Leon", "Maya", "Nikolai",
  "Olivia", "Pedro", "Quinn", "Rosa", "Samir", "Tara", "Umar", "Vera", "Wen", "Xavier", "Yusuf", "Zara", "Beth", "Cliff",
  "Dmitri", "Emily", "Farid", "Gwen", "Hugo", "Iris", "Jorge", "Kamal", "Laura", "Marek", "Nadia", "Oscar", "Paula",
  "Ruth", "Stefan", "Tomas", "Ulla", "Victor", "Wanda", "Yara", "Zeke", "Abby", "Brent", "Chloe", "Derek", "Eve", "Floyd"
] as const

const PRONOUN: Readonly<Record<string, "He" | "She">> = Object.fromEntries(
  NAMES.map((name) => [
    name,
    [
      "Anna", "Mei", "Fatima", "Olga", "Lucia", "Grace", "Priya", "Sofia", "Amara", "Elena", "Ingrid", "Keiko", "Maya",
      "Olivia", "Quinn", "Rosa", "Tara", "Vera", "Wen", "Zara", "Beth", "Emily", "Gwen", "Iris", "Laura", "Nadia",
      "Paula", "Ruth", "Ulla", "Wanda", "Yara", "Abby", "Chloe", "Eve"
    ].includes(name) ? "She" : "He"
  ])
)

const ITEMS = ["apples", "marbles", "stickers", "books", "coins", "pencils", "cookies", "stamps", "shells", "cards"] as const
const GAINS = ["buys {x} more", "finds {x} more", "gets {x} more from a friend", "receives {x} more"] as const
const LOSSES = ["gives away {x}", "sells {x}", "loses {x}", "gives {x} to a friend"] as const

const pick = <A>(rng: Rng, xs: ReadonlyArray<A>): A => xs[rng.int(xs.length)]!

/** `k` names, all different while there are enough of them. */
const pickNames = (rng: Rng, k: number): Array<string> => {
  const pool: Array<string> = [...NAMES]
  const out: Array<string> = []
  for (let i = 0; i < k; i++) {
    if (pool.length === 0) pool.push(...NAMES)
    out.push(pool.splice(rng.int(pool.length), 1)[0]!)
  }
  return out
}

/** A number of exactly `digits` digits (1..9 for one digit). */
const operand = (rng: Rng, digits: number): number => {
  const low = digits === 1 ? 1 : 10 ** (digits - 1)
  return low + rng.int(10 ** digits - low)
}

interface Drawn {
  readonly question: string
  readonly rationale: string
  readonly answer: string
  readonly values: Readonly<Record<string, unknown>>
}

const arithmetic = (rng: Rng, p: Readonly<Record<string, number>>): Drawn => {
  const name = pick(rng, NAMES)
  const he = PRONOUN[name]!
  const items = pick(rng, ITEMS)
  const start = operand(rng, p.digits!)
  const sentences = [`${name} has ${start} ${items}.`]
  const equations: Array<string> = []
  const operators: Array<"+" | "-"> = []
  const operands: Array<number> = []
  let value = start
  for (let s = 0; s < p.steps!; s++) {
    const x = operand(rng, p.digits!)
    // Subtraction only where it leaves a count that is not negative.
    const op = rng.next() < 0.5 && x <= value ? "-" : "+"
    const next = op === "+" ? value + x : value - x
    sentences.push(`${he} ${pick(rng, op === "+" ? GAINS : LOSSES).replace("{x}", String(x))}.`)
    equations.push(`${value} ${op} ${x} = ${next}.`)
    operators.push(op)
    operands.push(x)
    value = next
  }
  sentences.push(`How many ${items} does ${name} have now?`)
  return { question: sentences.join(" "), rationale: equations.join(" "), answer: String(value), values: { start, operators, operands } }
}

const lastLetters = (rng: Rng, p: Readonly<Record<string, number>>): Drawn => {
  const words = pickNames(rng, p.words!)
  const letters = words.map((w) => w[w.length - 1]!)
  const answer = letters.join("")
  const spelled = words.map((w, i) => `The last letter of "${w}" is "${letters[i]}".`)
  return {
    question: `Take the last letters of the words in "${words.join(" ")}" and concatenate them.`,
    rationale: `${spelled.join(" ")} Concatenating them gives "${answer}".`,
    answer,
    values: { words }
  }
}

const coinFlip = (rng: Rng, p: Readonly<Record<string, number>>): Drawn => {
  const people = pickNames(rng, p.people!)
  const flips = people.map(() => rng.next() < 0.5)
  let heads = true
  const question = ["A coin is heads up."]
  const steps = ["The coin starts heads up."]
  people.forEach((who, i) => {
    if (flips[i]) {
      heads = !heads
      question.push(`${who} flips the coin.`)
      steps.push(`${who} flips it, so it is ${heads ? "heads" : "tails"} up.`)
    } else {
      question.push(`${who} does not flip the coin.`)
      steps.push(`${who} does not flip it, so it stays ${heads ? "heads" : "tails"} up.`)
    }
  })
  question.push("Is the coin still heads up?")
  return { question: question.join(" "), rationale: steps.join(" "), answer: heads ? "yes" : "no", values: { people, flips } }
}

const PLACES = ["ones", "tens", "hundreds", "thousands", "ten thousands", "hundred thousands"]

const compare = (rng: Rng, p: Readonly<Record<string, number>>): Drawn => {
  const digits = p.digits!
  const a = String(operand(rng, digits))
  // A shared leading part of random length, so that the first differing digit can be anywhere (or nowhere: equal).
  const shared = rng.int(digits + 1)
  let b = a.slice(0, shared)
  while (b.length < digits) b += String(b.length === 0 && digits > 1 ? 1 + rng.int(9) : rng.int(10))
  const at = Array.from(a).findIndex((c, i) => c !== b[i])
  const label = at < 0 ? "equal" : a[at]! > b[at]! ? "greater" : "less"
  const phrase = label === "equal" ? "equal to" : `${label} than`
  const place = PLACES[digits - 1 - at] ?? `${digits - at}th from the right`
  const rationale = at < 0
    ? `${a} and ${b} have the same digit${digits === 1 ? "" : "s"}, so ${a} is equal to ${b}.`
    : `${a} and ${b} both have ${digits} digit${digits === 1 ? "" : "s"}. The first digits that differ are ${a[at]} and ${b[at]} (the ${place} place), and ` +
      `${a[at]} is ${label === "greater" ? "more" : "less"} than ${b[at]}, so ${a} is ${phrase} ${b}.`
  return {
    question: `Is ${a} greater than, less than or equal to ${b}?`,
    rationale,
    answer: label,
    values: { a: Number(a), b: Number(b) }
  }
}

const GENERATORS: { readonly [T in TaskName]: (rng: Rng, p: Readonly<Record<string, number>>) => Drawn } = {
  arithmetic,
  last_letters: lastLetters,
  coin_flip: coinFlip,
  compare
}

/** The params `task` reads: those given, the defaults for the rest (params the task does not read are dropped). */
export const taskParams = (task: TaskName, given: TaskDifficulty): Readonly<Record<string, number>> =>
  Object.fromEntries(
    Object.entries(TaskDefaults[task]).map(([key, fallback]) => [key, (given as Record<string, number | undefined>)[key] ?? fallback])
  )

/** Example `index` of `task` for `seed`: the same for every run that asks for at least index + 1 examples. */
export const taskExample = (task: TaskName, params: TaskDifficulty, seed: number, index: number): TaskExample => {
  const p = taskParams(task, params)
  const drawn = GENERATORS[task](makeRng(deriveSeed(seed, "task", task, index)), p)
  return {
    id: `${task}-${String(index).padStart(6, "0")}`,
    question: drawn.question,
    prompt: drawn.question + ANSWER_CUE,
    completion: ` ${drawn.rationale} The answer is ${drawn.answer}.`,
    rationale: drawn.rationale,
    answer: drawn.answer,
    metadata: { task, ...p, ...drawn.values }
  }
}

/** Examples 0..examples-1 of `task` for `seed`. */
export const generateTask = (task: TaskName, params: TaskDifficulty, examples: number, seed: number): Array<TaskExample> =>
  Array.from({ length: examples }, (_, i) => taskExample(task, params, seed, i))
