/**
 * What a model is, as data: the `model:` block of a train node. Builders in this folder turn a spec
 * into tfjs variables and a forward function.
 */
import { Schema } from "effect"

export const Activation = Schema.Literal("relu", "tanh", "gelu", "sigmoid", "elu")
export type Activation = typeof Activation.Type

export const MlpSpec = Schema.Struct({
  type: Schema.Literal("mlp"),
  hidden: Schema.propertySignature(Schema.Array(Schema.Int.pipe(Schema.positive()))).annotations({
    description: "Widths of the hidden layers, from the input to the output"
  }),
  activation: Schema.optionalWith(Activation, { default: () => "relu" as const }).annotations({
    description: "Activation of the hidden layers"
  }),
  dropout: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 0.95)), { default: () => 0 }).annotations({
    description: "Dropout rate on the hidden activations during training"
  }),
  inputDropout: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 0.95)), { default: () => 0 }).annotations({
    description: "Dropout rate on the input pixels during training (Hinton et al. 2015 used 0.2 for the teacher)"
  })
})
export type MlpSpec = typeof MlpSpec.Type

export const CnnSpec = Schema.Struct({
  type: Schema.Literal("cnn"),
  channels: Schema.propertySignature(Schema.Array(Schema.Int.pipe(Schema.positive()))).annotations({
    description: "Output channels of each 3x3 conv layer; each is followed by the activation and 2x2 max pooling"
  }),
  dense: Schema.optionalWith(Schema.Array(Schema.Int.pipe(Schema.positive())), { default: () => [] }).annotations({
    description: "Hidden sizes of the dense head after the convolutions"
  }),
  activation: Schema.optionalWith(Activation, { default: () => "relu" as const }).annotations({
    description: "Activation of the hidden layers"
  }),
  dropout: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 0.95)), { default: () => 0 }).annotations({
    description: "Dropout rate on the dense head's activations during training"
  }),
  imageShape: Schema.optionalWith(Schema.Tuple(Schema.Int, Schema.Int, Schema.Int), {
    default: () => [28, 28, 1] as const
  }).annotations({ description: "Image shape [height, width, channels] the flat features are reshaped to" })
})
export type CnnSpec = typeof CnnSpec.Type

export const ModelSpec = Schema.Union(MlpSpec, CnnSpec)
export type ModelSpec = typeof ModelSpec.Type

/**
 * Decodes a spec stored as plain JSON (a Model artifact's `spec`), filling in the defaults above.
 * Throws a ParseError naming the offending field.
 */
export const decodeModelSpec: (u: unknown) => ModelSpec = Schema.decodeUnknownSync(ModelSpec)
