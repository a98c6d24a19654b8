// Report-generation metrics over tokenised text: corpus BLEU-1..4 (nltk), ROUGE-L (pycocoevalcap), METEOR
// (nltk, without WordNet), with the Porter stemmer METEOR needs. References are given per hypothesis as a list
// of token lists (several radiologists' reports may describe one volume).

/**
 * Lower-cases and splits text into words and numbers. A token is a run of letters/digits; a decimal number
 * (digits '.' digits, e.g. 1.5) stays one token; every other character (punctuation, hyphens, slashes, spaces)
 * only separates tokens. "Ground-glass opacity, 1.5 cm." → ['ground', 'glass', 'opacity', '1.5', 'cm'].
 */
export function tokenizeForNlg(text: string): string[] {
  return text.toLowerCase().match(/[0-9]+\.[0-9]+|[\p{L}\p{N}]+/gu) ?? [];
}

function checkCorpus(fn: string, references: string[][][], hypotheses: string[][]): void {
  if (references.length !== hypotheses.length)
    throw new Error(`${fn}: ${hypotheses.length} hypotheses but ${references.length} reference lists`);
  const empty = references.findIndex((refs) => refs.length === 0);
  if (empty >= 0) throw new Error(`${fn}: hypothesis ${empty} has no reference`);
}

function ngramCounts(tokens: string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = tokens.slice(i, i + n).join('\u0000');
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/**
 * Corpus BLEU-1..4 = nltk.translate.bleu_score.corpus_bleu with weights (1), (½, ½), (⅓, ⅓, ⅓), (¼, ¼, ¼, ¼)
 * and no smoothing: clipped n-gram matches and n-gram counts are summed over the corpus before dividing, the
 * brevity penalty uses the summed closest reference lengths (shorter reference on a tie). As nltk does, a score
 * is exactly 0 when no unigram matches, and an order with no match enters as the smallest normal double
 * (≈2.2e-308), so BLEU-n is then ≈1e-77 rather than 0 — indistinguishable from 0 in any report.
 */
export function corpusBleu(
  references: string[][][],
  hypotheses: string[][],
): { bleu1: number; bleu2: number; bleu3: number; bleu4: number } {
  checkCorpus('corpusBleu', references, hypotheses);
  const num = [0, 0, 0, 0],
    den = [0, 0, 0, 0];
  let hypLen = 0,
    refLen = 0;
  hypotheses.forEach((hyp, h) => {
    const refs = references[h]!;
    for (let n = 1; n <= 4; n++) {
      const counts = ngramCounts(hyp, n);
      const refCounts = refs.map((r) => ngramCounts(r, n));
      let matched = 0,
        total = 0;
      for (const [gram, c] of counts) {
        matched += Math.min(c, Math.max(0, ...refCounts.map((rc) => rc.get(gram) ?? 0)));
        total += c;
      }
      num[n - 1] += matched;
      den[n - 1] += Math.max(1, total); // nltk's per-sentence floor of 1 keeps short hypotheses from dividing by 0
    }
    hypLen += hyp.length;
    refLen += refs
      .map((r) => r.length)
      .reduce((best, l) => {
        const d = Math.abs(l - hyp.length),
          bd = Math.abs(best - hyp.length);
        return d < bd || (d === bd && l < best) ? l : best;
      });
  });
  if (num[0] === 0) return { bleu1: 0, bleu2: 0, bleu3: 0, bleu4: 0 };
  const bp = hypLen > refLen ? 1 : hypLen === 0 ? 0 : Math.exp(1 - refLen / hypLen);
  const logP = num.map((m, i) => Math.log(m > 0 ? m / den[i]! : 2.2250738585072014e-308));
  const score = (order: number) => {
    const w = 1 / order; // the same weight nltk multiplies by, so BLEU-3 rounds as nltk's (1/3,)*3 does
    let s = 0;
    for (let i = 0; i < order; i++) s += w * logP[i]!;
    return bp * Math.exp(s);
  };
  return { bleu1: score(1), bleu2: score(2), bleu3: score(3), bleu4: score(4) };
}

function lcsLength(a: string[], b: string[]): number {
  let prev = new Int32Array(b.length + 1),
    cur = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++)
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

/**
 * ROUGE-L as pycocoevalcap's Rouge: per hypothesis, LCS precision (÷ hypothesis length) and recall (÷ reference
 * length) against each reference, the maximum of each over references, F = (1 + β²)PR / (R + β²P) with β = 1.2
 * (0 when P or R is 0, which includes an empty hypothesis or reference); the mean over hypotheses.
 */
export function rougeL(references: string[][][], hypotheses: string[][]): number {
  checkCorpus('rougeL', references, hypotheses);
  if (hypotheses.length === 0) throw new Error('rougeL: no hypotheses');
  const beta2 = 1.2 ** 2;
  let sum = 0;
  hypotheses.forEach((hyp, h) => {
    let p = 0,
      r = 0;
    for (const ref of references[h]!) {
      const lcs = lcsLength(ref, hyp);
      if (hyp.length) p = Math.max(p, lcs / hyp.length);
      if (ref.length) r = Math.max(r, lcs / ref.length);
    }
    sum += p !== 0 && r !== 0 ? ((1 + beta2) * p * r) / (r + beta2 * p) : 0;
  });
  return sum / hypotheses.length;
}

type Enum = [index: number, word: string];

/** nltk's _match_enums: greedy exact matching, scanning both lists from the end; matched items are removed. */
function matchEnums(hyp: Enum[], ref: Enum[]): [number, number][] {
  const matches: [number, number][] = [];
  for (let i = hyp.length - 1; i >= 0; i--) {
    for (let j = ref.length - 1; j >= 0; j--) {
      if (hyp[i]![1] === ref[j]![1]) {
        matches.push([hyp[i]![0], ref[j]![0]]);
        hyp.splice(i, 1);
        ref.splice(j, 1);
        break;
      }
    }
  }
  return matches;
}

function singleMeteor(reference: string[], hypothesis: string[]): number {
  const alpha = 0.9,
    beta = 3,
    gamma = 0.5;
  const hyp: Enum[] = hypothesis.map((w, i) => [i, w.toLowerCase()]);
  const ref: Enum[] = reference.map((w, i) => [i, w.toLowerCase()]);
  const hypLen = hyp.length,
    refLen = ref.length;
  const exact = matchEnums(hyp, ref);
  // stage 2 works on stems of what stage 1 left; indices still point into the original sentences
  const stemmed = matchEnums(
    hyp.map(([i, w]) => [i, porterStem(w)]),
    ref.map(([i, w]) => [i, porterStem(w)]),
  );
  const matches = [...exact, ...stemmed].sort((a, b) => a[0] - b[0]);
  const m = matches.length;
  if (m === 0 || hypLen === 0 || refLen === 0) return 0;
  const precision = m / hypLen,
    recall = m / refLen;
  const fmean = (precision * recall) / (alpha * precision + (1 - alpha) * recall);
  let chunks = 1;
  for (let i = 0; i + 1 < m; i++) {
    if (!(matches[i + 1]![0] === matches[i]![0] + 1 && matches[i + 1]![1] === matches[i]![1] + 1)) chunks++;
  }
  return (1 - gamma * (chunks / m) ** beta) * fmean;
}

/**
 * METEOR as nltk.translate.meteor_score.meteor_score (α 0.9, β 3, γ 0.5; the best reference per hypothesis),
 * averaged over hypotheses — the "exact + Porter stem" variant: nltk's third stage (WordNet synonyms) is left
 * out, as if WordNet had no synsets, so scores can be slightly below those of nltk with WordNet installed.
 */
export function meteor(references: string[][][], hypotheses: string[][]): number {
  checkCorpus('meteor', references, hypotheses);
  if (hypotheses.length === 0) throw new Error('meteor: no hypotheses');
  let sum = 0;
  hypotheses.forEach((hyp, h) => {
    sum += Math.max(...references[h]!.map((ref) => singleMeteor(ref, hyp)));
  });
  return sum / hypotheses.length;
}

// ---- Porter stemmer, nltk's PorterStemmer() in its default NLTK_EXTENSIONS mode ----

const IRREGULAR: Record<string, string> = {
  sky: 'sky',
  skies: 'sky',
  dying: 'die',
  lying: 'lie',
  tying: 'tie',
  news: 'news',
  innings: 'inning',
  inning: 'inning',
  outings: 'outing',
  outing: 'outing',
  cannings: 'canning',
  canning: 'canning',
  howe: 'howe',
  proceed: 'proceed',
  exceed: 'exceed',
  succeed: 'succeed',
};

function isConsonant(w: string, i: number): boolean {
  const c = w[i]!;
  if ('aeiou'.includes(c)) return false;
  if (c === 'y') return i === 0 ? true : !isConsonant(w, i - 1);
  return true;
}

/** Porter's m: the number of vowel→consonant transitions. */
function measure(stem: string): number {
  let m = 0;
  for (let i = 1; i < stem.length; i++) if (!isConsonant(stem, i - 1) && isConsonant(stem, i)) m++;
  return m;
}

function containsVowel(stem: string): boolean {
  for (let i = 0; i < stem.length; i++) if (!isConsonant(stem, i)) return true;
  return false;
}

function endsDoubleConsonant(w: string): boolean {
  return w.length >= 2 && w[w.length - 1] === w[w.length - 2] && isConsonant(w, w.length - 1);
}

/** *o: ends consonant-vowel-consonant, the last not w/x/y; NLTK also accepts a two-letter vowel-consonant word. */
function endsCvc(w: string): boolean {
  const n = w.length;
  return (
    (n >= 3 &&
      isConsonant(w, n - 3) &&
      !isConsonant(w, n - 2) &&
      isConsonant(w, n - 1) &&
      !'wxy'.includes(w[n - 1]!)) ||
    (n === 2 && !isConsonant(w, 0) && isConsonant(w, 1))
  );
}

type Rule = [suffix: string, replacement: string, condition: ((stem: string) => boolean) | null];

/** The first rule whose suffix matches decides: applied if its condition holds, else the word is kept. */
function applyRules(word: string, rules: Rule[]): string {
  for (const [suffix, replacement, condition] of rules) {
    if (suffix === '*d' && endsDoubleConsonant(word)) {
      const stem = word.slice(0, -2);
      return !condition || condition(stem) ? stem + replacement : word;
    }
    if (word.endsWith(suffix)) {
      const stem = word.slice(0, word.length - suffix.length);
      return !condition || condition(stem) ? stem + replacement : word;
    }
  }
  return word;
}

const positive = (stem: string) => measure(stem) > 0;
const aboveOne = (stem: string) => measure(stem) > 1;

function step1a(w: string): string {
  if (w.endsWith('ies') && w.length === 4) return w.slice(0, -3) + 'ie';
  return applyRules(w, [
    ['sses', 'ss', null],
    ['ies', 'i', null],
    ['ss', 'ss', null],
    ['s', '', null],
  ]);
}

function step1b(w: string): string {
  if (w.endsWith('ied')) return w.slice(0, -3) + (w.length === 4 ? 'ie' : 'i');
  if (w.endsWith('eed')) {
    const stem = w.slice(0, -3);
    return measure(stem) > 0 ? stem + 'ee' : w;
  }
  let stem: string | undefined;
  for (const suffix of ['ed', 'ing']) {
    if (w.endsWith(suffix) && containsVowel(w.slice(0, -suffix.length))) {
      stem = w.slice(0, -suffix.length);
      break;
    }
  }
  if (stem === undefined) return w;
  const last = stem[stem.length - 1]!;
  return applyRules(stem, [
    ['at', 'ate', null],
    ['bl', 'ble', null],
    ['iz', 'ize', null],
    ['*d', last, () => !'lsz'.includes(last)],
    ['', 'e', (s) => measure(s) === 1 && endsCvc(s)],
  ]);
}

function step1c(w: string): string {
  return applyRules(w, [['y', 'i', (s) => s.length > 1 && isConsonant(s, s.length - 1)]]);
}

function step2(w: string): string {
  if (w.endsWith('alli') && positive(w.slice(0, -4))) return step2(w.slice(0, -4) + 'al');
  return applyRules(w, [
    ['ational', 'ate', positive],
    ['tional', 'tion', positive],
    ['enci', 'ence', positive],
    ['anci', 'ance', positive],
    ['izer', 'ize', positive],
    ['bli', 'ble', positive],
    ['alli', 'al', positive],
    ['entli', 'ent', positive],
    ['eli', 'e', positive],
    ['ousli', 'ous', positive],
    ['ization', 'ize', positive],
    ['ation', 'ate', positive],
    ['ator', 'ate', positive],
    ['alism', 'al', positive],
    ['iveness', 'ive', positive],
    ['fulness', 'ful', positive],
    ['ousness', 'ous', positive],
    ['aliti', 'al', positive],
    ['iviti', 'ive', positive],
    ['biliti', 'ble', positive],
    ['fulli', 'ful', positive],
    ['logi', 'log', () => positive(w.slice(0, -3))], // the 'l' counts with the stem, so geo-/theo- stems qualify
  ]);
}

function step3(w: string): string {
  return applyRules(w, [
    ['icate', 'ic', positive],
    ['ative', '', positive],
    ['alize', 'al', positive],
    ['iciti', 'ic', positive],
    ['ical', 'ic', positive],
    ['ful', '', positive],
    ['ness', '', positive],
  ]);
}

function step4(w: string): string {
  return applyRules(w, [
    ['al', '', aboveOne],
    ['ance', '', aboveOne],
    ['ence', '', aboveOne],
    ['er', '', aboveOne],
    ['ic', '', aboveOne],
    ['able', '', aboveOne],
    ['ible', '', aboveOne],
    ['ant', '', aboveOne],
    ['ement', '', aboveOne],
    ['ment', '', aboveOne],
    ['ent', '', aboveOne],
    ['ion', '', (s) => aboveOne(s) && (s.endsWith('s') || s.endsWith('t'))],
    ['ou', '', aboveOne],
    ['ism', '', aboveOne],
    ['ate', '', aboveOne],
    ['iti', '', aboveOne],
    ['ous', '', aboveOne],
    ['ive', '', aboveOne],
    ['ize', '', aboveOne],
  ]);
}

function step5a(w: string): string {
  if (!w.endsWith('e')) return w;
  const stem = w.slice(0, -1),
    m = measure(stem);
  return m > 1 || (m === 1 && !endsCvc(stem)) ? stem : w;
}

function step5b(w: string): string {
  return applyRules(w, [['ll', 'l', () => measure(w.slice(0, -1)) > 1]]);
}

/**
 * Porter stem of a word, equal to nltk's PorterStemmer().stem (NLTK_EXTENSIONS mode): lower-cased; nltk's
 * irregular forms (skies → sky, dying → die, ...) looked up on the word as given; words of ≤ 2 letters kept.
 */
export function porterStem(word: string): string {
  const w = word.toLowerCase();
  if (Object.hasOwn(IRREGULAR, word)) return IRREGULAR[w]!;
  if (word.length <= 2) return w;
  return step5b(step5a(step4(step3(step2(step1c(step1b(step1a(w))))))));
}
