// Radiology reports as CT-RATE stores them (one CSV row per volume: VolumeName, ClinicalInformation_EN,
// Technique_EN, Findings_EN, Impressions_EN) turned into the text a text encoder trains on.
import type { Rng } from '../util/rng.js';

export interface ReportSections {
  findings: string;
  impressions: string;
}

// CT-RATE writes "Not given." for an absent section; pandas round trips turn empty cells into NaN/None.
const ABSENT = /^(?:not given\.?|nan|none|null|n\/a|na)?$/i;

/** Findings and impressions of a reports-CSV row, with absent values ("Not given.", NaN, empty) as ''. Raw text:
 *  `reportText` cleans it. Throws if the row has neither column (not a CT-RATE reports table). */
export function reportSections(
  row: Readonly<Record<string, string | undefined>>,
  source = row.VolumeName ?? 'report row',
): ReportSections {
  if (row.Findings_EN === undefined && row.Impressions_EN === undefined) {
    throw new Error(`${source}: no Findings_EN or Impressions_EN column (columns: ${Object.keys(row).join(', ')})`);
  }
  const value = (v: string | undefined) => (v === undefined || ABSENT.test(v.trim()) ? '' : v);
  return { findings: value(row.Findings_EN), impressions: value(row.Impressions_EN) };
}

// A list marker ("1.", "2)", "-", "•") opening a line, followed by text that is not a number (so "3.5 cm" stays).
const LINE_MARKER = /^\s*(?:[-*•·]|\d{1,2}[.)])\s+(?=[^\d\s])/;
// A numbered marker right after a sentence end: "... effusion. 2. Atelectasis".
const INLINE_MARKER = /([.:;!?])\s+\d{1,2}[.)]\s+(?=[^\d\s])/g;

/** Normalises a report for training: NFC, one kind of quote and dash, list markers removed, single spaces, no
 *  space before punctuation. Numbers and units ("5 mm", "3.2 cm") and letter case are kept (the tokenizer
 *  lowercases). Lines that were list items get a full stop when they lacked one, so they stay sentences. */
export function cleanReport(text: string): string {
  const t = text
    .normalize('NFC')
    .replace(/[\u2018\u2019\u201a\u201b\u2032\u00b4`]/g, "'")
    .replace(/[\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb]/g, '"')
    .replace(/[\u2010-\u2015\u2212\ufe58\ufe63\uff0d]/g, '-')
    .replace(/\u2026/g, '...')
    .replace(/[\r\u2028\u2029\u0085]/g, '\n')
    // Control and invisible format characters (zero-width space, soft hyphen) carry nothing; a tab is a space.
    .replace(/[^\P{C}\n]/gu, (c) => (c === '\t' ? ' ' : ''))
    .replace(/\p{Zs}/gu, ' ');
  const lines: string[] = [];
  for (const raw of t.split('\n')) {
    const marked = LINE_MARKER.test(raw);
    const line = raw.replace(LINE_MARKER, '').trim();
    if (line === '') continue;
    const prev = lines.length - 1;
    if (marked && prev >= 0 && !/[.!?:;,]$/.test(lines[prev]!)) lines[prev] += '.';
    lines.push(line);
  }
  return lines
    .join(' ')
    .replace(INLINE_MARKER, '$1 ')
    .replace(/\s+/g, ' ')
    .replace(/ ([,.;:!?])(?= |$)/g, '$1')
    .trim();
}

export const FINDINGS_LABEL = 'Findings:';
export const IMPRESSIONS_LABEL = 'Impressions:';

/** The training text of a report, cleaned. 'both' (default) gives "Findings: … Impressions: …", omitting an empty
 *  section: CT-CLIP trains on findings + impressions together, and the labels keep the boundary visible to the
 *  encoder (the impression restates the findings' conclusions). A single section comes without a label; '' when the
 *  wanted section is absent (the caller decides whether to skip or fall back). */
export function reportText(sections: ReportSections, o: { use?: 'findings' | 'impressions' | 'both' } = {}): string {
  const findings = cleanReport(sections.findings),
    impressions = cleanReport(sections.impressions);
  switch (o.use ?? 'both') {
    case 'findings':
      return findings;
    case 'impressions':
      return impressions;
    case 'both':
      return [findings && `${FINDINGS_LABEL} ${findings}`, impressions && `${IMPRESSIONS_LABEL} ${impressions}`]
        .filter(Boolean)
        .join(' ');
    default:
      throw new Error(`reportText: use must be 'findings', 'impressions' or 'both', not ${JSON.stringify(o.use)}`);
  }
}

/** A report in one short line for lists of cases: its impressions when it has them (the conclusions, where the
 *  findings start with boilerplate), else its beginning; cut to `max` characters. */
export function reportGist(report: string, max = 110): string {
  const at = report.indexOf(IMPRESSIONS_LABEL);
  const gist = at >= 0 ? report.slice(at).trim() : report.trim();
  return gist.length > max ? `${gist.slice(0, max - 3)}...` : gist;
}

// Abbreviations after which a full stop does not end a sentence (before a lowercase word none does, see below).
const ABBREVIATIONS = new Set([
  'e.g',
  'i.e',
  'eg',
  'ie',
  'approx',
  'appr',
  'ca',
  'vs',
  'cf',
  'dr',
  'mr',
  'mrs',
  'ms',
  'prof',
  'st',
  'resp',
  'incl',
  'esp',
  'et al',
  'al',
  'figs',
]);
// These are abbreviations only before a number ("No. 4 station"): "No." can also be a whole answer.
const BEFORE_NUMBER = new Set(['no', 'nos', 'nr', 'fig', 'ref', 'vol', 'ser', 'img', 'seg']);
// A terminal run of [.!?], closing quotes/brackets, then whitespace: a candidate sentence end.
const END = /[.!?]+["')\]]*(?=\s)/g;

/** Splits a report into sentences at . ! ? followed by whitespace, except after abbreviations (e.g., i.e.,
 *  approx., vs., Dr., No. 4) and, in mixed-case text, before a lowercase word (an unknown abbreviation is more likely
 *  than a sentence starting in lowercase). Decimals ("3.5 mm") never split: no space follows their point.
 *  A blank line always ends a sentence. */
export function splitSentences(text: string): string[] {
  const caseless = !/\p{Lu}/u.test(text);
  const out: string[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    let start = 0;
    for (const m of block.matchAll(END)) {
      const end = m.index + m[0].length;
      const next = /\S/.exec(block.slice(end))?.[0];
      if (next === undefined || !isSentenceEnd(block.slice(start, m.index), m[0], next, caseless)) continue;
      out.push(block.slice(start, end));
      start = end;
    }
    out.push(block.slice(start));
  }
  return out.map((s) => s.trim()).filter((s) => s !== '');
}

function isSentenceEnd(before: string, terminal: string, next: string, caseless: boolean): boolean {
  if (terminal === '.') {
    const word = (/(?:et al|[^\s(["']*)$/i.exec(before)?.[0] ?? '').toLowerCase();
    if (ABBREVIATIONS.has(word)) return false;
    if (BEFORE_NUMBER.has(word) && /\d/.test(next)) return false;
    if (word === 'etc' && !/\p{Lu}/u.test(next)) return false;
  }
  return caseless || !/\p{Ll}/u.test(next);
}

export interface AugmentOptions {
  /** Probability of shuffling the sentence order. Default 0.5. */
  shuffleProb?: number;
  /** Probability of dropping each sentence. Default 0.1. */
  dropProb?: number;
  /** Never keep fewer sentences than this (nor drop from a report that has no more). Default 1. */
  minSentences?: number;
}

/** Sentence-level text augmentation: drop sentences, shuffle their order. A text made by `reportText` is augmented
 *  within each labelled section (labels stay in place; minSentences holds per section). Deterministic given the
 *  Rng's state: take the Rng from (seed, epoch, sample) so a sample's augmentation depends on nothing else. */
export function augmentReport(text: string, rng: Rng, o: AugmentOptions = {}): string {
  const shuffleProb = o.shuffleProb ?? 0.5,
    dropProb = o.dropProb ?? 0.1,
    minSentences = o.minSentences ?? 1;
  for (const [name, p] of [
    ['shuffleProb', shuffleProb],
    ['dropProb', dropProb],
  ] as const) {
    if (!(p >= 0 && p <= 1)) throw new Error(`augmentReport: ${name} ${p} must be in [0, 1]`);
  }
  if (!(Number.isInteger(minSentences) && minSentences >= 0)) {
    throw new Error(`augmentReport: minSentences ${minSentences} must be a non-negative integer`);
  }
  const sections = text.split(new RegExp(`(?=(?:^|\\s)(?:${FINDINGS_LABEL}|${IMPRESSIONS_LABEL}) )`));
  return sections
    .map((section) => {
      const label = new RegExp(`^\\s*(${FINDINGS_LABEL}|${IMPRESSIONS_LABEL}) `).exec(section);
      const body = augmentSentences(
        splitSentences(label ? section.slice(label[0].length) : section),
        rng,
        shuffleProb,
        dropProb,
        minSentences,
      );
      return label ? `${label[1]} ${body}` : body;
    })
    .filter((s) => s !== '')
    .join(' ');
}

function augmentSentences(
  sentences: string[],
  rng: Rng,
  shuffleProb: number,
  dropProb: number,
  minSentences: number,
): string {
  const keep = sentences.map(() => !rng.bool(dropProb));
  const dropped = rng.shuffle(sentences.map((_, i) => i).filter((i) => !keep[i]));
  for (let kept = sentences.length - dropped.length; kept < minSentences && dropped.length > 0; kept++)
    keep[dropped.pop()!] = true;
  const out = sentences.filter((_, i) => keep[i]);
  if (rng.bool(shuffleProb)) rng.shuffle(out);
  return out.join(' ');
}
