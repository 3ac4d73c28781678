/**
 * A binary min-heap under a caller's order, for the two places tokenizers need the best of a changing
 * set: BPE training (the most frequent pair) and encoding (the earliest-learned merge, leftmost first).
 */

export interface Heap<A> {
  readonly items: Array<A>
  /** True when `a` must come out before `b`. */
  readonly before: (a: A, b: A) => boolean
}

export const makeHeap = <A>(before: (a: A, b: A) => boolean): Heap<A> => ({ items: [], before })

export const push = <A>(heap: Heap<A>, item: A): void => {
  const { items, before } = heap
  items.push(item)
  for (let i = items.length - 1; i > 0; ) {
    const parent = (i - 1) >> 1
    if (!before(items[i]!, items[parent]!)) break
    ;[items[i], items[parent]] = [items[parent]!, items[i]!]
    i = parent
  }
}

export const pop = <A>(heap: Heap<A>): A | undefined => {
  const { items, before } = heap
  const top = items[0]
  const last = items.pop()
  if (items.length === 0 || last === undefined) return top
  items[0] = last
  for (let i = 0; ; ) {
    const l = 2 * i + 1
    const r = l + 1
    let best = i
    if (l < items.length && before(items[l]!, items[best]!)) best = l
    if (r < items.length && before(items[r]!, items[best]!)) best = r
    if (best === i) break
    ;[items[i], items[best]] = [items[best]!, items[i]!]
    i = best
  }
  return top
}
