/**
 * How varied a set of samples is, over token ids: distinct-n (Li et al. 2016), the repetition rate
 * within a sample, and self-BLEU (Zhu et al. 2018, Texygen); and the answer normalisation behind exact
 * match. Pure functions over token sequences and strings.
 */

/** An n-gram's key; the separator occurs in no token id and no word, so different n-grams never share a key. */
const gramKey = (tokens: ArrayLike<number | string>, at: number, n: number): string => {
  let key = String(tokens[at])
  for (let i = 1; i < n; i++) key += `\u0000${tokens[at + i]}`
  return key
}

const gramCounts = (tokens: ArrayLike<number | string>, n: number): Map<string, number> => {
  const counts = new Map<string, number>()
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = gramKey(tokens, i, n)
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return counts
}

/** distinct-n: distinct n-grams / all n-grams, pooled over the samples (n-grams never cross samples); 0 when there are none. */
export const distinctN = (samples: ReadonlyArray<ArrayLike<number>>, n: number): number => {
  const seen = new Set<string>()
  let total = 0
  for (const s of samples) {
    for (let i = 0; i + n <= s.length; i++) {
      seen.add(gramKey(s, i, n))
      total++
    }
  }
  return total > 0 ? seen.size / total : 0
}

/**
 * Repetition rate: per sample, the fraction of its n-grams (default 4-grams) that already occurred
 * earlier in the same sample; the mean over the samples that have at least one n-gram (0 when none do).
 */
export const repetitionRate = (samples: ReadonlyArray<ArrayLike<number>>, n = 4): number => {
  let sum = 0
  let counted = 0
  for (const s of samples) {
    const grams = s.length - n + 1
    if (grams < 1) continue
    const seen = new Set<string>()
    let repeated = 0
    for (let i = 0; i < grams; i++) {
      const key = gramKey(s, i, n)
      if (seen.has(key)) repeated++
      else seen.add(key)
    }
    sum += repeated / grams
    counted++
  }
  return counted > 0 ? sum / counted : 0
}

/** A sequence's length and its n-gram counts for n = 1 .. maxN (index n - 1): what BLEU compares. */
export interface NgramCounts {
  readonly length: number
  readonly counts: ReadonlyArray<ReadonlyMap<string, number>>
}

export const ngramCounts = (tokens: ArrayLike<number | string>, maxN: number): NgramCounts => ({
  length: tokens.length,
  counts: Array.from({ length: maxN }, (_, i) => gramCounts(tokens, i + 1))
})

/**
 * Sentence BLEU of a non-empty hypothesis against one or more references: uniform weights over
 * 1..maxN-grams, each n-gram's count clipped to its most in any one reference, a brevity penalty
 * against the closest reference length (the shorter on a tie), and NLTK's smoothing method 1 (a
 * precision with no match counts 0.1 / its n-gram count), so a short hypothesis does not zero it.
 */
export const bleu = (hyp: NgramCounts, refs: ReadonlyArray<NgramCounts>, maxN: number): number => {
  let logSum = 0
  for (let n = 1; n <= maxN; n++) {
    const grams = Math.max(0, hyp.length - n + 1)
    if (grams === 0) {
      logSum += Math.log(0.1)
      continue
    }
    let clipped = 0
    for (const [gram, c] of hyp.counts[n - 1]!) {
      let most = 0
      for (const r of refs) most = Math.max(most, r.counts[n - 1]!.get(gram) ?? 0)
      clipped += Math.min(c, most)
    }
    logSum += Math.log(clipped > 0 ? clipped / grams : 0.1 / grams)
  }
  let closest = Infinity
  for (const { length: d } of refs) {
    if (Math.abs(d - hyp.length) < Math.abs(closest - hyp.length) || (Math.abs(d - hyp.length) === Math.abs(closest - hyp.length) && d < closest)) closest = d
  }
  const brevity = hyp.length >= closest ? 1 : Math.exp(1 - closest / hyp.length)
  return brevity * Math.exp(logSum / maxN)
}

/**
 * Self-BLEU: each sample's BLEU-4 (`bleu`) with every other sample as a reference, averaged over the
 * non-empty samples. Higher is less diverse. NaN for fewer than two samples. Cost O(G^2 L).
 */
export const selfBleu = (samples: ReadonlyArray<ArrayLike<number>>, maxN = 4): number => {
  if (samples.length < 2) return NaN
  const counted = samples.map((s) => ngramCounts(s, maxN))
  let total = 0
  let scored = 0
  counted.forEach((hyp, h) => {
    if (hyp.length === 0) return
    total += bleu(hyp, counted.filter((_, r) => r !== h), maxN)
    scored++
  })
  return scored > 0 ? total / scored : NaN
}

/** An answer as exact match compares it: lower case, whitespace collapsed, outer whitespace and punctuation dropped. */
export const normaliseAnswer = (text: string): string =>
  text.toLowerCase().replace(/\s+/g, " ").trim().replace(/^[\s\p{P}]+|[\s\p{P}]+$/gu, "")
