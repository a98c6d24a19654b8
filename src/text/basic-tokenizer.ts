// BERT's text normalisation and pre-tokenization, as Hugging Face `tokenizers` does it (BertNormalizer +
// BertPreTokenizer, the code path behind transformers' BertTokenizer): vocabularies trained in Python then give the
// same ids here. Where the old pure-Python BertTokenizer differs (it NFC-composes first and lowercases whole words,
// so a final capital sigma becomes 'ς'), we follow `tokenizers`.

export interface BertNormalizerOptions {
  /** Drop control/format characters, NUL and U+FFFD; map every whitespace character to ' '. Default true. */
  cleanText?: boolean;
  /** Put spaces around CJK ideographs so that each becomes its own word. Default true. */
  handleChineseChars?: boolean;
  /** Remove accents (NFD, then drop non-spacing marks). null (default): follow `lowercase`, as BERT does. */
  stripAccents?: boolean | null;
  /** Lowercase. Default true (uncased BERT). */
  lowercase?: boolean;
}

export type ResolvedNormalizer = Required<BertNormalizerOptions>;

export function resolveNormalizer(o: BertNormalizerOptions = {}): ResolvedNormalizer {
  return {
    cleanText: o.cleanText ?? true,
    handleChineseChars: o.handleChineseChars ?? true,
    stripAccents: o.stripAccents ?? null,
    lowercase: o.lowercase ?? true,
  };
}

// Printable ASCII plus \t \n \r needs none of the Unicode work below: reports are nearly always this.
const PLAIN_ASCII = /^[\x20-\x7e\t\n\r]*$/;
// \t \n \r count as whitespace, every other character of category C* (Cc, Cf, Cs, Co, Cn) is removed.
const CONTROL = /[^\P{C}\t\n\r]|\ufffd/gu;
const WHITESPACE = /[\p{White_Space}\t\n\r]/gu;
// CJK ideograph blocks exactly as `tokenizers` lists them (its extension-C start, 0x2B920, differs from Python's).
const CJK = new RegExp(
  String.raw`[\u{4E00}-\u{9FFF}\u{3400}-\u{4DBF}\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}` +
    String.raw`\u{2B920}-\u{2CEAF}\u{F900}-\u{FAFF}\u{2F800}-\u{2FA1F}]`,
  'gu',
);
const NONSPACING_MARK = /\p{Mn}/gu;

/** BertNormalizer: clean, isolate CJK, strip accents, lowercase — in that order, as `tokenizers` applies them. */
export function normalizeBert(text: string, o: ResolvedNormalizer): string {
  const stripAccents = o.stripAccents ?? o.lowercase;
  if (PLAIN_ASCII.test(text)) {
    if (o.cleanText) text = text.replace(/[\t\n\r]/g, ' ');
    return o.lowercase ? text.toLowerCase() : text;
  }
  if (o.cleanText) text = text.replace(CONTROL, '').replace(WHITESPACE, ' ');
  if (o.handleChineseChars) text = text.replace(CJK, ' $& ');
  if (stripAccents) text = text.normalize('NFD').replace(NONSPACING_MARK, '');
  // Lowercasing is per character in `tokenizers`; JavaScript's only context-dependent mapping is the final sigma.
  if (o.lowercase) text = text.replace(/Σ/g, 'σ').toLowerCase();
  return text;
}

// BERT's punctuation: all non-alphanumeric printable ASCII plus Unicode category P*.
const PUNCT = String.raw`\p{P}\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e`;
const WORD = new RegExp(String.raw`[${PUNCT}]|[^${PUNCT}\p{White_Space}\t\n\r]+`, 'gu');

/** BertPreTokenizer: split on whitespace, and make every punctuation character a word of its own. */
export function preTokenizeBert(normalized: string): string[] {
  return normalized.match(WORD) ?? [];
}
