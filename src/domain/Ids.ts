/**
 * Branded identifiers shared by every layer: a node's id inside a pipeline, the content hash that keys
 * a node's cached result, and the id of one run of a pipeline.
 */
import { Schema } from "effect"

/** A node id as the pipeline grammar checks it: safe in a file name, a SQL string and a Mermaid graph. */
export const NodeIdText = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z_][A-Za-z0-9_-]*$/, {
    message: () => "a node id is a letter or '_' followed by letters, digits, '_' or '-'"
  })
)

export const NodeId = NodeIdText.pipe(Schema.brand("NodeId"))
export type NodeId = typeof NodeId.Type

export const CacheKey = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/), Schema.brand("CacheKey"))
export type CacheKey = typeof CacheKey.Type

/**
 * A run or sweep id a user gives (`--run-id`, `--sweep-id`): it names export folders and report files,
 * so it is one path segment: letters, digits, '_', '-' and '.', not starting with '.'.
 */
export const RunIdText = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/, {
    message: () => "an id is letters, digits, '_', '-' and '.', starting with a letter, digit or '_'"
  })
)

export const RunId = Schema.String.pipe(Schema.brand("RunId"))
export type RunId = typeof RunId.Type
