// Rule-based extraction of CT-RATE's 18 abnormality labels from a free-text chest CT report, for the clinical
// efficacy of generated reports (the same extractor reads the generated and the reference report, as CheXpert's
// labeler does for chest X-ray report generation). Per sentence and clause: label-specific mention patterns, then
// NegEx-style negation (a cue such as "no" / "without" before the mention within its scope, or "is not seen" /
// "within normal limits" right after it, unless it speaks of change: "is not significantly changed"). Hedged mentions
// ("suggestive of", "likely", "?") count as positive, as CT-RATE's labels do. Text is lower-cased and hyphen spacing
// normalised first, so detokenised model output ("ground - glass", "( likely cardiomegaly )") reads like the original.
import { CT_RATE_LABELS } from '../domain/ct-rate.js';

/** Bump when a rule changes: extracted labels are comparable only within one version. */
export const LABEL_EXTRACTOR_VERSION = 'ct-rate-rules-2';

/** CT-RATE's label columns in the dataset's order: the ones the synthetic reports are written from. */
export const EXTRACTED_LABELS = CT_RATE_LABELS;

type Span = [number, number];
/** Finds a label's mentions in one normalised clause. */
type Finder = (clause: string) => Span[];

// "not" / "no" / "non" may not occur inside a pattern's gap ("lymph nodes are not enlarged" is no mention).
const GAP = (n: number): string => `(?:(?!\\b(?:no|not|non)\\b)[^.;]){0,${n}}?`;
const NOT_NEG_WORD = '(?:(?!(?:no|not|non)\\b)[a-z]+ )?';

function all(...patterns: RegExp[]): Finder {
  const global = patterns.map((p) => new RegExp(p.source, 'g'));
  // one scan rules out most clauses before the patterns are run one by one
  const any = new RegExp(patterns.map((p) => `(?:${p.source})`).join('|'));
  return (clause) =>
    any.test(clause)
      ? global.flatMap((re) => [...clause.matchAll(re)].map((m): Span => [m.index, m.index + m[0].length]))
      : [];
}
/** Mentions of `finder` unless `veto` matches the clause (e.g. a nodule in the thyroid). */
function unless(finder: Finder, veto: (clause: string, span: Span) => boolean): Finder {
  return (clause) => finder(clause).filter((s) => !veto(clause, s));
}

const LUNG_CONTEXT = /\blungs?\b|pulmonary|parenchym|subpleural|fissur|(?:upper|middle|lower) lobes?|lingula/;
const OTHER_ORGAN = /thyroid|adrenal|\bliver\b|hepatic|kidney|renal|spleen|splenic|breast|pancrea|skin|subcutaneous/;
const CORONARY = /coronar|\blad\b|left anterior descending|circumflex/;
const SYSTEMIC_VESSEL = new RegExp(
  String.raw`\baort\w*|carotid|subclavian|brachiocephalic|iliac|vascular|vessels?\b|great arter|` +
    String.raw`(?<!coronary )\barter(?:y|ies|ial)\b`,
);
const CALCIFIC = /\b(?:calcif\w*|atherosclero\w*|atherom\w*|plaques?)\b/g;
const ATHERO = /^(?:atherosclero|atherom)/;

/** Calcific/atherosclerotic mentions, split by vessel: coronary → coronary label; aorta and other arteries, or an
 *  unnamed vessel with an atherosclerosis word → arterial wall label. Calcified nodes, nodules or valves name no
 *  vessel and no atherosclerosis, and give neither. */
function calcification(which: 'arterial' | 'coronary'): Finder {
  return (clause) => {
    const coronary = CORONARY.test(clause),
      systemic = SYSTEMIC_VESSEL.test(clause);
    return [...clause.matchAll(CALCIFIC)]
      .filter((m) => {
        if (which === 'coronary') return coronary;
        return systemic || (!coronary && ATHERO.test(m[0]));
      })
      .map((m): Span => [m.index, m.index + m[0].length]);
  };
}

const before = (clause: string, s: Span, chars: number): string => clause.slice(Math.max(0, s[0] - chars), s[0]);

const FINDERS: Finder[] = [
  // Medical material
  all(
    /\bsternotomy\b/,
    /\b(?:sternal |surgical |metallic )?wires?\b/,
    /\bpacemakers?\b/,
    /\bdefibrillators?\b/,
    /\bicd\b/,
    /\bcatheters?\b/,
    /\bstents?\b/,
    /\bprosthe(?:sis|ses|tic)\b/,
    /\b(?:surgical|vascular|metallic) clips?\b/,
    /\bforeign (?:material|body|bodies)\b/,
    /\bdevices?\b/,
    /\belectrodes?\b/,
    /\bstaples?\b/,
    /\bsurgical material/,
    /\b(?:endotracheal|tracheostomy|nasogastric|chest|thoracostomy) tubes?\b/,
    /\b(?:valve replacement|bypass grafts?|cabg)\b/,
    /\bembolization coils?\b/,
    /\bimplants?\b/,
  ),
  // Arterial wall calcification
  calcification('arterial'),
  // Cardiomegaly
  all(
    /\bcardiomegal\w*/,
    new RegExp(`\\bheart (?:is |was )?${NOT_NEG_WORD}(?:enlarged|increased in size)`),
    /\benlarge(?:d|ment of the) (?:heart|cardiac (?:silhouette|size|contours?|chambers?))\b/,
    new RegExp(
      `\\b(?:heart|cardiac) (?:size|silhouette|dimensions?|contours?) ` +
        `(?:is |are |was |were )?${NOT_NEG_WORD}(?:increased|enlarged)`,
    ),
    /\bincreased (?:heart size|cardiac (?:size|dimensions?|silhouette)|cardiothoracic ratio)/,
    new RegExp(`\\bcardiothoracic ratio (?:is |was )?${NOT_NEG_WORD}increased`),
    /\bincrease in (?:the )?(?:heart size|cardiac (?:size|dimensions?)|cardiothoracic ratio)/,
  ),
  // Pericardial effusion
  all(
    /\bpericardial (?:(?:thickening|fluid) (?:or|and|\/|-) ?)?(?:effusion|fluid)/,
    /\b(?:effusion|fluid) (?:in|of) the pericard/,
  ),
  // Coronary artery wall calcification
  calcification('coronary'),
  // Hiatal hernia
  all(/\bhiat(?:al|us) hernia/, /\bhernia\w* (?:of|through|at) the (?:esophageal )?hiatus/),
  // Lymphadenopathy
  all(
    /\b(?:lymph)?adenopath\w*/,
    /\blymph ?node (?:enlargement|conglomerat\w*)/,
    /\b(?:enlarged|pathologic(?:al)?(?:ly enlarged)?|bulky) (?:[a-z]+ ){0,4}?lymph ?nodes?\b/,
    new RegExp(
      `\\blymph ?nodes?\\b${GAP(60)}\\b(?:pathologic(?:al)? (?:size|dimension|appearance)|enlarged|increased in size)`,
    ),
  ),
  // Emphysema
  all(/\bemphysema\w*/, /\bbull(?:a|ae|ous)\b/),
  // Atelectasis
  all(/atelecta\w*/, /\b(?:lung|lobe|lobar|segmental) collapse\b/, /\bcollapsed (?:lung|lobe)\b/),
  // Lung nodule
  unless(
    all(
      /\b(?:micro)?nodul(?:e|es|i)\b/,
      /\bnodular (?:lesions?|densit(?:y|ies)|opacit(?:y|ies))\b/,
      /\bmicronodular\b/,
      /\b(?:solid|subsolid|part-solid|spiculated|cavitary|cavitating) (?:lesions?|mass(?:es)?)\b/,
      /\b(?:pulmonary|lung|parenchymal) mass(?:es)?\b/,
      /\bmass(?:es)?\b(?= [^.;]{0,30}\b(?:lobe|lungs?)\b)/,
    ),
    (clause) => OTHER_ORGAN.test(clause) && !LUNG_CONTEXT.test(clause),
  ),
  // Lung opacity
  all(
    /\bground[- ]glass\b/,
    /\bopacit(?:y|ies)\b/,
    /\binfiltrat\w*/,
    /\b(?:increased|patchy|hazy|parenchymal|nodular) densit(?:y|ies)\b/,
    /\bdensity increase\w*/,
    /\bcrazy[- ]paving\b/,
  ),
  // Pulmonary fibrotic sequela
  all(
    /\bfibro(?:sis|tic)\b/,
    /\bsequel(?:a|ae|ar)\b/,
    /fibroatelecta/,
    /\bparenchymal bands?\b/,
    /\bfibrous (?:bands?|strands?)\b/,
    /\bhoneycomb\w*/,
  ),
  // Pleural effusion
  unless(
    all(
      /\bpleural (?:(?:thickening|fluid) (?:or|and|\/|-) ?)?(?:effusions?|fluid)/,
      /\b(?:effusions?|fluid) (?:in|of) the pleura/,
      /\bhydrothorax\b/,
      /\beffusions?\b/,
    ),
    (clause, s) =>
      clause.slice(s[0], s[0] + 8) === 'effusion' && !/pleura/.test(before(clause, s, 12)) && /pericard/.test(clause),
  ),
  // Mosaic attenuation pattern
  all(/\bmosaic\b/),
  // Peribronchial thickening
  all(
    /\bperibronch\w* (?:(?:wall|interstitial|interstitium) )?(?:thickening|thickened|cuffing)/,
    /\bperibronchial and [a-z ]{1,40}?thickening/,
    /\bbronchial walls? (?:thickening|thickened|(?:is|are) thickened)/,
    /\bthickening of (?:the )?(?:peri)?bronchial walls?/,
    /\bthickened (?:peri)?bronchial walls?/,
  ),
  // Consolidation
  all(/\bconsolidat\w*/, /\bair bronchograms?\b/),
  // Bronchiectasis
  all(/\bbronchiecta\w*/),
  // Interlobular septal thickening
  unless(
    all(
      /\bsept(?:al|a) (?:wall )?thickening/,
      /\bthickening of (?:the )?(?:interlobular )?sept(?:a|al|um)\b/,
      /\bthickened (?:interlobular )?septa\b/,
      /\binterlobular sept(?:a|al)[^.;]{0,25}thicken/,
    ),
    (clause, s) => /(?:atrial|ventricular|nasal) $/.test(before(clause, s, 20)),
  ),
];

// ---- negation ----------------------------------------------------------------------------------------------------

const PRE_NEGATION = /\b(?:no|without|absence of|absent|negative for|free of|neither|nor|non)\b/g;
// "no change in the nodule" reports a finding, it does not deny one (NegEx's pseudo-negations).
const PSEUDO_NEGATION = new RegExp(
  String.raw`^(?:\s*(?:significant|marked|definite|new|interval))?\s*` +
    '(?:change|increase|decrease|progression|regression|difference|growth)',
);
// A negated phrase has ended once its verb has come ("no effusion is seen, mild atelectasis ...") or a new positive
// phrase begins after a comma ("no pleural effusion, minimal pericardial effusion is present").
const SCOPE_END = new RegExp(
  String.raw`\b(?:is|are|was|were|has been|have been)\s+(?:\w+\s+)?` +
    String.raw`(?:seen|observed|noted|detected|present|identified|visualized|evident|demonstrated)\b` +
    String.raw`|\b(?:but|however|although|though|whereas|while|except|apart from)\b` +
    String.raw`|,\s*(?:a|an|the|mild|minimal|moderate|severe|marked|small|large|there|with)\b`,
);
// "is not seen" / "was not detected" / "within normal limits" shortly after the mention: its own predicate, unless a
// predicate asserting something else comes first ("atelectasis is seen, effusion is not").
const POST_NEGATION = new RegExp(
  '^([^.;]{0,60}?)(?:\\b(?:is|are|was|were|has|have)\\s+(?:not|no longer)\\b' +
    '|\\bnot\\s+(?:seen|observed|detected|identified|present|visualized|noted|evident|demonstrated)\\b' +
    '|\\b(?:is|are|was|were|has been|have been)\\s+(?:absent|excluded|ruled out)\\b|\\bwithin normal limits\\b)',
);
// "... is not significantly changed" / "has not increased" says the finding is still there (NegEx's pseudo-negation,
// after the mention): the predicate is about change, not presence.
const POST_PSEUDO_NEGATION = new RegExp(
  String.raw`^\s*(?:is|are|was|were|has|have)\s+not\s+(?:been\s+)?(?:significantly\s+|substantially\s+|markedly\s+)?` +
    String.raw`(?:changed|increased|decreased|progressed|grown|regressed)\b`,
);
const ASSERTION = new RegExp(
  String.raw`\b(?:is|are|was|were)\s+(?:\w+\s+)?` +
    String.raw`(?:seen|observed|noted|detected|present|identified|visualized|evident|demonstrated)\b` +
    String.raw`|\bthere (?:is|are)\b`,
);

function isNegated(clause: string, s: Span): boolean {
  const head = clause.slice(0, s[0]);
  let cue: RegExpMatchArray | undefined;
  for (const m of head.matchAll(PRE_NEGATION)) if (!PSEUDO_NEGATION.test(head.slice(m.index + m[0].length))) cue = m;
  if (cue && !SCOPE_END.test(head.slice(cue.index! + cue[0].length))) return true;
  const rest = clause.slice(s[1]);
  const post = POST_NEGATION.exec(rest);
  return post !== null && !ASSERTION.test(post[1]!) && !POST_PSEUDO_NEGATION.test(rest.slice(post[1]!.length));
}

// ---- text ---------------------------------------------------------------------------------------------------------

/** Lower-case, hyphens and brackets re-joined as written, decimals re-joined ("2. 5 cm" from a detokeniser). */
function normalise(report: string): string {
  return report
    .toLowerCase()
    .replace(/\b(findings|impressions?)\s*:/g, '. ')
    .replace(/(\w)\s*-\s*(?=\w)/g, '$1-')
    .replace(/(\d)\.\s+(\d)/g, '$1.$2')
    .replace(/\(\s*/g, '(')
    .replace(/\s*\)/g, ')')
    .replace(/\s+/g, ' ');
}

/** Sentences, then clauses at ';' and at contrastive conjunctions (negation never crosses them). */
function clauses(report: string): string[] {
  return normalise(report)
    .split(/[.!?;]+(?:\s+|$)|\s+(?:but|however|whereas|although)\s+/)
    .map((c) => c.trim())
    .filter((c) => c !== '');
}

/** The 18 CT-RATE labels (0/1, EXTRACTED_LABELS order) a report states as present, hedged mentions included. */
export function extractLabels(report: string): number[] {
  if (typeof report !== 'string') throw new Error(`extractLabels: report must be a string, got ${typeof report}`);
  const labels = FINDERS.map(() => 0);
  for (const clause of clauses(report)) {
    FINDERS.forEach((find, i) => {
      if (labels[i] === 1) return;
      if (find(clause).some((s) => !isNegated(clause, s))) labels[i] = 1;
    });
  }
  return labels;
}

/** Per-label and overall share of reports where the extracted label equals the given one. */
export function extractorAgreement(reports: string[], labels: number[][]): { perLabel: number[]; overall: number } {
  if (reports.length !== labels.length)
    throw new Error(`extractorAgreement: ${reports.length} reports but ${labels.length} label rows`);
  if (reports.length === 0) throw new Error('extractorAgreement: no reports');
  const L = EXTRACTED_LABELS.length;
  const agree = new Array<number>(L).fill(0);
  reports.forEach((r, n) => {
    const row = labels[n]!;
    if (row.length !== L) throw new Error(`extractorAgreement: label row ${n} has ${row.length} values, expected ${L}`);
    extractLabels(r).forEach((v, i) => {
      if (v === (row[i]! >= 0.5 ? 1 : 0)) agree[i]!++;
    });
  });
  const perLabel = agree.map((a) => a / reports.length);
  return { perLabel, overall: perLabel.reduce((s, v) => s + v, 0) / L };
}

/** Every label a text mentions (EXTRACTED_LABELS index) and whether each mention is negated; a label mentioned both
 * ways appears twice. Read per sentence, it says which finding the sentence names and whether it denies it. */
export function labelMentions(text: string): { label: number; negated: boolean }[] {
  const out = new Map<string, { label: number; negated: boolean }>();
  for (const clause of clauses(text)) {
    FINDERS.forEach((find, label) => {
      for (const s of find(clause)) {
        const negated = isNegated(clause, s);
        out.set(`${label}:${negated}`, { label, negated });
      }
    });
  }
  return [...out.values()];
}

export interface ExtractorScores {
  /** per label (EXTRACTED_LABELS order): share of reports agreeing, precision, recall and F1 of the extracted label
   * against the given one (NaN where undefined: no positives extracted, or none given), and the given prevalence */
  perLabel: { accuracy: number; precision: number; recall: number; f1: number; prevalence: number }[];
  /** means over labels (F1 over the labels where it is defined) */
  macroAccuracy: number;
  macroF1: number;
  /** share of reports with every label right */
  exactMatch: number;
}

/** How well the extracted labels of `reports` match `labels` (the truth), per label and as macro means. */
export function extractorScores(reports: string[], labels: number[][]): ExtractorScores {
  if (reports.length !== labels.length)
    throw new Error(`extractorScores: ${reports.length} reports but ${labels.length} label rows`);
  if (reports.length === 0) throw new Error('extractorScores: no reports');
  const L = EXTRACTED_LABELS.length;
  const counts = Array.from({ length: L }, () => ({ tp: 0, fp: 0, fn: 0, tn: 0 }));
  let exact = 0;
  reports.forEach((r, n) => {
    const row = labels[n]!;
    if (row.length !== L) throw new Error(`extractorScores: label row ${n} has ${row.length} values, expected ${L}`);
    let wrong = 0;
    extractLabels(r).forEach((v, i) => {
      const c = counts[i]!,
        truth = row[i]! >= 0.5;
      if (v === 1) truth ? c.tp++ : (c.fp++, wrong++);
      else truth ? (c.fn++, wrong++) : c.tn++;
    });
    if (wrong === 0) exact++;
  });
  const N = reports.length;
  const perLabel = counts.map(({ tp, fp, fn, tn }) => ({
    accuracy: (tp + tn) / N,
    precision: tp + fp > 0 ? tp / (tp + fp) : NaN,
    recall: tp + fn > 0 ? tp / (tp + fn) : NaN,
    f1: tp + fp + fn > 0 ? (2 * tp) / (2 * tp + fp + fn) : NaN,
    prevalence: (tp + fn) / N,
  }));
  const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
  return {
    perLabel,
    macroAccuracy: mean(perLabel.map((p) => p.accuracy)),
    macroF1: mean(perLabel.map((p) => p.f1).filter((f) => !Number.isNaN(f))),
    exactMatch: exact / N,
  };
}

const NEGATION_CUE = /\b(?:no|not|without|absence of|absent|negative for|free of|neither|nor)\b/;

/** A search query read for negation: the findings it only denies (EXTRACTED_LABELS indices), its clauses that deny
 * none (the text to rank by; '' when every clause denies), and clauses with a negation cue tied to no finding the
 * rules know (a negation that cannot be applied). */
export function readNegations(text: string): { negated: number[]; rest: string; unread: string[] } {
  const negated = new Set<number>(),
    asserted = new Set<number>();
  const kept: string[] = [],
    unread: string[] = [];
  for (const clause of clauses(text)) {
    let denies = false,
      asserts = false;
    FINDERS.forEach((find, label) => {
      for (const s of find(clause)) {
        const n = isNegated(clause, s);
        (n ? negated : asserted).add(label);
        if (n) denies = true;
        else asserts = true;
      }
    });
    if (!denies && NEGATION_CUE.test(clause)) unread.push(clause);
    if (asserts || !denies) kept.push(clause);
  }
  return { negated: [...negated].filter((l) => !asserted.has(l)).sort((a, b) => a - b), rest: kept.join('. '), unread };
}
