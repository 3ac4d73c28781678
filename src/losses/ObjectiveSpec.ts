/**
 * The objective's params as the pipeline gives them, and the names of the registered divergences. No
 * tensor code: the train node's params Schema (and so `validate`, `schema` and the registry) read this
 * module without loading tfjs. Divergences.ts checks that its implementations carry exactly these names.
 */
import { Schema } from "effect"

/** The divergence registry's names, in registry order (Divergences.ts fails to load if they differ). */
export const divergenceNames = [
  "forward_kl",
  "reverse_kl",
  "jsd",
  "generalized_jsd",
  "tvd",
  "skew_kl",
  "skew_reverse_kl",
  "mse_logits",
  "cosine"
] as const

export type DivergenceName = (typeof divergenceNames)[number]

export const ObjectiveSpec = Schema.Struct({
  divergence: Schema.optionalWith(Schema.Literal(...divergenceNames, "none"), { default: () => "none" as const }).annotations({
    description: "Which divergence distils the teacher; none trains on the hard labels only"
  }),
  temperature: Schema.optionalWith(Schema.Number.pipe(Schema.positive()), { default: () => 1 }).annotations({
    description: "Softmax temperature applied to both teacher and student logits in the distillation term"
  }),
  alpha: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0.5 }).annotations({
    description: "Weight of the distillation term; 1 - alpha goes to the hard-label CE"
  }),
  scaleT2: Schema.optionalWith(Schema.Boolean, { default: () => true }).annotations({
    description: "Multiply the distillation term by T^2 (Hinton et al. 2015)"
  }),
  beta: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 1)), { default: () => 0.5 }).annotations({
    description: "generalized_jsd: 0 is forward KL(teacher || student), 1 reverse KL(student || teacher) (GKD's endpoints), between them the rescaled mixture"
  }),
  skew: Schema.optionalWith(Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThan(1)), { default: () => 0.1 }).annotations({
    description: "skew_kl / skew_reverse_kl: the share of the other side mixed into the second argument"
  }),
  space: Schema.optionalWith(Schema.Literal("logits", "probs"), { default: () => "probs" as const }).annotations({
    description: "cosine: compare probabilities or logits"
  })
})
export type ObjectiveSpec = typeof ObjectiveSpec.Type
