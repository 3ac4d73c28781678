/**
 * The cache keys of a resolved pipeline's nodes, computed without running anything (pure graph work):
 * each node's key hashes its kind, version, encoded params (and the kind's fingerprint, e.g. a data
 * file's content hash), its upstream keys and its seed (cache/CacheKey.ts). The executor keys results
 * with these; `validate` and `explain` print them.
 */
import * as CacheKey from "../cache/CacheKey.js"
import type { CacheKey as CacheKeyType } from "../domain/Ids.js"
import type { Pipeline, ResolvedNode } from "../pipeline/Pipeline.js"

/** The cache key of a node given its upstream keys: kind, version, resolved params, inputs and seed. */
export const nodeCacheKey = (node: ResolvedNode, upstreamKeys: ReadonlyMap<string, string>): CacheKeyType => {
  const fingerprint = node.kind.fingerprint?.(node.params)
  return CacheKey.make({
    kind: node.kind.kind,
    version: node.kind.version,
    params: fingerprint === undefined ? node.encodedParams : { params: node.encodedParams, fingerprint },
    inputs: Object.fromEntries(
      Object.entries(node.inputs).map(([port, ref]) => [port, `${upstreamKeys.get(ref.node)}#${ref.port}`])
    ),
    seed: node.seed
  })
}

/** Cache keys of every node of a pipeline, without running anything. */
export const pipelineCacheKeys = (pipeline: Pipeline): ReadonlyMap<string, CacheKeyType> => {
  const keys = new Map<string, CacheKeyType>()
  for (const node of pipeline.nodes) keys.set(node.id, nodeCacheKey(node, keys))
  return keys
}
