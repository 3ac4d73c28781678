/**
 * "Did you mean" suggestions for every error that names a wrong kind, key, node or port.
 */

/** Levenshtein distance, for "did you mean" suggestions. */
export const editDistance = (a: string, b: string): number => {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!
    prev[0] = i
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1))
      diag = up
    }
  }
  return prev[b.length]!
}

/** The candidate with the smallest edit distance (case-insensitive), however far; ties go to the first. */
export const closest = (word: string, candidates: Iterable<string>): { readonly candidate: string; readonly distance: number } | undefined => {
  let best: { candidate: string; distance: number } | undefined
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase())
    if (best === undefined || distance < best.distance) best = { candidate, distance }
  }
  return best
}

/** The nearest candidate when it is close enough to be a plausible typo. */
export const nearest = (word: string, candidates: Iterable<string>): string | undefined => {
  const best = closest(word, candidates)
  return best !== undefined && best.distance <= Math.max(2, Math.floor(word.length / 3)) ? best.candidate : undefined
}

/** " (did you mean 'x'?)" or "". */
export const didYouMean = (word: string, candidates: Iterable<string>): string => {
  const n = nearest(word, candidates)
  return n === undefined ? "" : ` (did you mean '${n}'?)`
}

/** "a, b or c" style list of valid choices, each quoted. */
export const choices = (candidates: Iterable<string>): string => {
  const list = [...candidates].map((c) => `'${c}'`)
  return list.length <= 1 ? list.join("") : `${list.slice(0, -1).join(", ")} or ${list[list.length - 1]}`
}
