/**
 * The registry of divergences: one explicit list, names unique (checked when this module loads), looked
 * up by `getDivergence`. Each entry lives in its own lowercase module with its formula and paper.
 */
import { Schema } from "effect"
import { choices, closest } from "../domain/Suggest.js"
import { cosine } from "./cosine.js"
import type { Divergence } from "./Divergence.js"
import { forwardKl } from "./forward_kl.js"
import { generalizedJsd } from "./generalized_jsd.js"
import { jsd } from "./jsd.js"
import { mseLogits } from "./mse_logits.js"
import { reverseKl } from "./reverse_kl.js"
import { skewKl } from "./skew_kl.js"
import { skewReverseKl } from "./skew_reverse_kl.js"
import { tvd } from "./tvd.js"
import { type DivergenceName, divergenceNames } from "./ObjectiveSpec.js"

export const divergences = [
  forwardKl,
  reverseKl,
  jsd,
  generalizedJsd,
  tvd,
  skewKl,
  skewReverseKl,
  mseLogits,
  cosine
] as const

export type { DivergenceName }
export { divergenceNames }

/** A divergence name that is not in the registry; names the nearest valid one and lists them all. */
export class UnknownDivergenceError extends Schema.TaggedError<UnknownDivergenceError>()("UnknownDivergenceError", {
  name: Schema.String,
  nearest: Schema.String,
  valid: Schema.Array(Schema.String),
  message: Schema.String
}) {}

/** Indexes a list of divergences by name; a repeated name is a bug in the list, so it throws. */
export const indexDivergences = (list: ReadonlyArray<Divergence>): ReadonlyMap<string, Divergence> => {
  const byName = new Map<string, Divergence>()
  for (const d of list) {
    if (byName.has(d.name)) throw new Error(`divergence "${d.name}" is registered twice`)
    byName.set(d.name, d)
  }
  return byName
}

const registry = indexDivergences(divergences)

// The params Schema lists the names without loading the implementations; the two lists must agree.
if (divergences.map((d) => d.name).join() !== divergenceNames.join()) {
  throw new Error(`ObjectiveSpec.ts lists divergences ${divergenceNames.join(", ")} but the registry has ${[...registry.keys()].join(", ")}`)
}

/**
 * The valid name closest to `name` by edit distance (case-insensitive), however far: an unknown
 * divergence always gets a suggestion. Ties go to registry order.
 */
export const nearestName = (name: string, valid: ReadonlyArray<string>): string => closest(name, valid)?.candidate ?? ""

export const isDivergenceName = (name: string): name is DivergenceName => registry.has(name)

/** The registered divergence called `name`; throws `UnknownDivergenceError` for any other name. */
export const getDivergence = (name: string): Divergence => {
  const found = registry.get(name)
  if (found !== undefined) return found
  const valid = [...registry.keys()]
  const nearest = nearestName(name, valid)
  throw new UnknownDivergenceError({
    name,
    nearest,
    valid,
    message: `Unknown divergence '${name}' (did you mean '${nearest}'?). Valid divergences: ${choices(valid)}.`
  })
}
