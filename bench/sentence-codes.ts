// `node dist/bench/sentence-codes.js [--cache <cache>] [--checkpoint <run>] [--config <preset>] [--k <K>]
// [--epsilon <ε>] [--split <split>] [--seed <n>]`: do sentence codes cluster by finding? The training reports'
// sentences are embedded as the 'sentence' TMA formulation embeds them (report token states mean-pooled by sentence,
// projected into the embedding space) with the project's text encoder — a checkpoint's, or a random-init one — and
// clustered into K codes (Sinkhorn, relative ε, then argmax). Prints the NMI of the codes against the finding each
// sentence states (the rule-based label extractor read on the single sentence), and how often a sentence shares a
// code with its own negation (another sentence denying the same finding) against the chance of any two sentences.
import * as torch from '../src/torch/index.js';
import { applyOverrides, loadConfig } from '../src/train/config.js';
import { buildT3dModel, loadRunCheckpoint } from '../src/train/factory.js';
import { readCacheIndex } from '../src/data/cache.js';
import { trainWordPiece } from '../src/text/wordpiece-trainer.js';
import { embedSentences, sentenceCodes, sentenceFindings, statedFindingNmi } from '../src/eval/sentence-codes.js';
import { normalizedMutualInformation } from '../src/eval/metrics/clustering.js';

const args = new Map<string, string>();
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  if (!argv[i]!.startsWith('--') || argv[i + 1] === undefined) {
    throw new Error('usage: node dist/bench/sentence-codes.js [--cache <cache>] [--checkpoint <run>] [--k <K>] ...');
  }
  args.set(argv[i]!.slice(2), argv[i + 1]!);
}
const seed = Number(args.get('seed') ?? 0);
torch.manualSeed(seed);
const given = args.get('checkpoint');
const loaded = given ? loadRunCheckpoint(given) : undefined;
const config = loaded?.config ?? loadConfig(args.get('config') ?? 'demo');
const cache = args.get('cache') ?? config.data.cache;
const split = args.get('split') ?? config.data.trainSplit;
const reports = readCacheIndex(cache)
  .entries.filter((e) => e.split === split)
  .map((e) => e.report);
if (!reports.length) throw new Error(`${cache}: no reports in split '${split}'`);
const tokenizer = loaded?.tokenizer ?? trainWordPiece(reports, { vocabSize: config.model.vocabSize });
const K = Number(args.get('k') ?? config.model.prototypes);
if (loaded && K !== loaded.model.prototypes.count)
  throw new Error(`--k ${K}: the checkpoint has ${loaded.model.prototypes.count} prototypes`);
const model =
  loaded?.model ??
  buildT3dModel(applyOverrides(config, [`model.prototypes=${K}`]).model, [16, 16, 16], tokenizer.vocabSize);
model.eval();

const epsilon = Number(args.get('epsilon') ?? 0.05);
const { texts, emb: all } = embedSentences(model, tokenizer, reports, config.data.maxTokens);
const codes = sentenceCodes(model, all, epsilon);
const findings = sentenceFindings(texts);
const { stated, denied, findingOf } = findings;
const { nmi: nmiStated, chance: nmiChance } = statedFindingNmi(codes, findings, seed);
const polarity = texts.map((_, i) =>
  stated.includes(i) ? findingOf(i) : denied.includes(i) ? `no ${findingOf(i)}` : 'other',
);
const nmiAll = normalizedMutualInformation(codes, polarity);

// sentences sharing a code with a negation of their own finding, and same-code pairs against chance
const deniedCodes = new Map<string, Set<number>>();
for (const i of denied) deniedCodes.set(findingOf(i), (deniedCodes.get(findingOf(i)) ?? new Set()).add(codes[i]!));
const withNegation = stated.filter((i) => deniedCodes.has(findingOf(i)));
const sharing = withNegation.filter((i) => deniedCodes.get(findingOf(i))!.has(codes[i]!)).length;
let pairs = 0,
  same = 0;
for (const i of withNegation) {
  for (const j of denied) {
    if (findingOf(j) !== findingOf(i)) continue;
    pairs++;
    if (codes[i] === codes[j]) same++;
  }
}
const usage = new Map<number, number>();
for (const c of codes) usage.set(c, (usage.get(c) ?? 0) + 1);
const chance = [...usage.values()].reduce((s, n) => s + (n / codes.length) ** 2, 0);
const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
console.log(
  `${given ?? 'random-init text encoder'} on ${cache} (${split}): ${texts.length} sentences of ${reports.length} ` +
    `reports, K ${K}, ${usage.size} codes used, Sinkhorn ε ${epsilon} (relative) then argmax\n` +
    `NMI(codes, finding) over the ${stated.length} sentences stating one finding: ${nmiStated.toFixed(4)} ` +
    `(codes shuffled: ${nmiChance.toFixed(4)})\n` +
    `NMI(codes, finding and polarity, 'other' for the rest) over all sentences: ${nmiAll.toFixed(4)}\n` +
    `sentences sharing a code with a negation of their finding: ${sharing}/${withNegation.length} ` +
    `(${pct(sharing / Math.max(1, withNegation.length))}); same-code share of (statement, negation) pairs ` +
    `${pct(same / Math.max(1, pairs))} over ${pairs} pairs, against ${pct(chance)} for any two sentences`,
);
all.dispose();
model.dispose();
