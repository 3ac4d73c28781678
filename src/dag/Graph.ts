/**
 * Pure graph work over a pipeline's nodes: dependency edges, a deterministic topological order, cycle
 * detection that returns the cycle's path, and the set of nodes downstream of a node. Synchronous and
 * free of Effect so that validation, `graph` and the executor share it.
 */

/** Each node id maps to the ids it depends on. */
export type Dependencies = ReadonlyMap<string, ReadonlyArray<string>>

/**
 * A topological order (dependencies first), ties broken by declaration order; or the first cycle found,
 * as a closed path [a, b, ..., a] in dependency direction (a needs b needs ... needs a).
 */
export const topologicalOrder = (
  deps: Dependencies
): { readonly _tag: "Order"; readonly order: ReadonlyArray<string> } | { readonly _tag: "Cycle"; readonly cycle: ReadonlyArray<string> } => {
  const state = new Map<string, "visiting" | "done">()
  const order: Array<string> = []
  const stack: Array<string> = []
  for (const root of deps.keys()) {
    if (state.has(root)) continue
    // Iterative DFS so that deep pipelines (born-again chains, sweeps) cannot overflow the stack.
    const frames: Array<{ id: string; next: number }> = [{ id: root, next: 0 }]
    state.set(root, "visiting")
    stack.push(root)
    while (frames.length > 0) {
      const frame = frames[frames.length - 1]!
      const children = deps.get(frame.id) ?? []
      if (frame.next < children.length) {
        const child = children[frame.next++]!
        const s = state.get(child)
        if (s === "visiting") {
          const from = stack.indexOf(child)
          return { _tag: "Cycle", cycle: [...stack.slice(from), child] }
        }
        if (s === undefined && deps.has(child)) {
          state.set(child, "visiting")
          stack.push(child)
          frames.push({ id: child, next: 0 })
        }
      } else {
        frames.pop()
        stack.pop()
        state.set(frame.id, "done")
        order.push(frame.id)
      }
    }
  }
  return { _tag: "Order", order }
}

/** Ids that depend, directly or not, on any of `roots` (roots included). */
export const downstreamOf = (deps: Dependencies, roots: Iterable<string>): ReadonlySet<string> => {
  const dependents = new Map<string, Array<string>>()
  for (const [id, ds] of deps) {
    for (const d of ds) {
      const list = dependents.get(d) ?? []
      list.push(id)
      dependents.set(d, list)
    }
  }
  const seen = new Set<string>()
  const queue = [...roots]
  while (queue.length > 0) {
    const id = queue.pop()!
    if (seen.has(id)) continue
    seen.add(id)
    queue.push(...(dependents.get(id) ?? []))
  }
  return seen
}
