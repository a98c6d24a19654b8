// The embedding index's two questions: which indexed cases match a text, and which look like a scan or an indexed
// case. Both load the checkpoint only to find its table and embed the query.
//
// Negation: an embedding of "no pleural effusion" lies next to "pleural effusion" (the words are nearly the same),
// so a text query is first read by the rule-based label extractor. A finding the query only denies leaves out the
// volumes labelled with it; the rest are ranked by the clauses that deny nothing, or, when every clause denies, away
// from the denied findings (by −mean of their names' unit embeddings). Subtracting the denied finding from a query
// that also asks for something was tried on the demo's index and never ranked the asked finding higher (10 query
// pairs: 35 against 39 hits in the top 10), so it is not done. A negation the rules tie to no finding cannot be
// applied and is said so.
import { existsSync } from 'node:fs';
import * as torch from '../torch/index.js';
import { EXTRACTED_LABELS, readNegations } from '../text/label-extractor.js';
import { embedTexts } from '../inference/embed.js';
import { loadT3dCheckpoint } from '../train/factory.js';
import { openAnalyzer } from './analyzer.js';
import { checkpointId } from '../train/checkpoint.js';
import { VectorIndex, type Hit, type SearchFilter } from './vector-index.js';

export interface QueryOptions {
  checkpoint: string;
  db: string;
  filter: SearchFilter;
  log: (line: string) => void;
}

/** The checkpoint's table in `db`, or an error that says how to build it. */
async function openIndex(db: string, checkpointId: string, checkpointDir: string): Promise<VectorIndex> {
  if (!existsSync(db))
    throw new Error(`--db ${db}: no such index; build one with \`t3d index --checkpoint ${checkpointDir}\``);
  const index = await VectorIndex.open(db, checkpointId);
  if ((await index.count()) === 0) {
    const others = await VectorIndex.checkpoints(db);
    throw new Error(
      `--db ${db}: nothing indexed with checkpoint ` +
        `${index.checkpointId}${others.length ? ` (tables exist for ${others.join(', ')})` : ''}; run \`t3d index ` +
        `--checkpoint ${checkpointDir} --db ${db}\``,
    );
  }
  return index;
}

/** The index's own spelling of a label given in any case; an unknown one is an error that lists the valid ones. */
export async function resolveLabel(index: VectorIndex, label: string | undefined): Promise<string | undefined> {
  if (label === undefined) return undefined;
  const names = await index.labelNames();
  const found = names.find((n) => n.toLowerCase() === label.trim().toLowerCase());
  if (!found) throw new Error(`--label '${label}': no such finding in the index; valid labels: ${names.join(', ')}`);
  return found;
}

export interface TextQuery {
  vector: number[];
  /** labels the query denies, present in the index: their volumes are left out */
  withoutLabels: string[];
  /** how the query was read, for the user */
  notes: string[];
}

const unit = (v: number[]): number[] => {
  const n = Math.hypot(...v) || 1;
  return v.map((x) => x / n);
};

/** A text query as searched (see the negation note above); `embed` gives report-encoder embeddings. */
export function readQuery(text: string, embed: (texts: string[]) => number[][], labelNames: string[]): TextQuery {
  const { negated, rest, unread } = readNegations(text);
  const notes = unread.map(
    (c) =>
      `'${c}' denies something the search cannot tell apart (no finding it knows is named), so it ranks as if ` +
      'it were asked for: an embedding does not encode "no"',
  );
  if (negated.length === 0) return { vector: embed([text])[0]!, withoutLabels: [], notes };
  const denied = negated.map((l) => EXTRACTED_LABELS[l]!);
  let vector: number[];
  if (rest) vector = embed([rest])[0]!;
  else {
    const away = embed(denied.map((d) => d.toLowerCase())).map(unit);
    vector = away[0]!.map((_, j) => -away.reduce((s, v) => s + v[j]!, 0) / away.length);
  }
  const withoutLabels = denied.flatMap((d) => labelNames.filter((n) => n.toLowerCase() === d.toLowerCase()));
  notes.push(
    `read '${text}' as ${rest ? `'${rest}' ` : ''}without ${denied.join(', ')}: volumes labelled ` +
      `${withoutLabels.join(', ') || '(none: the index has no such label)'} are left out, the rest ranked ` +
      (rest ? `by '${rest}'` : `away from ${denied.join(', ')}`),
  );
  return { vector, withoutLabels, notes };
}

/** The indexed volumes nearest to a text (the checkpoint's report encoder embeds it; see the note on negation). */
export async function searchText(text: string, o: QueryOptions): Promise<Hit[]> {
  const ckpt = loadT3dCheckpoint(o.checkpoint, o.log);
  try {
    const index = await openIndex(o.db, checkpointId(ckpt.dir), ckpt.dir);
    const label = await resolveLabel(index, o.filter.label);
    const { model, tokenizer, config } = ckpt;
    const embed = (texts: string[]) =>
      torch.tidy(() => {
        const e = embedTexts(model, tokenizer, texts, config.data.maxTokens).to('float32');
        const flat = e.toArray(),
          D = e.size(1);
        return texts.map((_, i) => flat.slice(i * D, (i + 1) * D));
      });
    const q = readQuery(text, embed, await index.labelNames());
    for (const note of q.notes) o.log(`search: ${note}`);
    return await index.search(q.vector, { ...o.filter, label, withoutLabels: q.withoutLabels });
  } finally {
    ckpt.model.dispose();
  }
}

/** The indexed volumes nearest to a scan on disk (embedded as `t3d analyze` does) or to an indexed id (left out). */
export async function searchSimilar(
  query: string,
  o: QueryOptions & { intercept?: number; series?: string },
): Promise<Hit[]> {
  if (existsSync(query)) {
    // a scan: one analyzer loads the checkpoint, names its table and embeds the scan
    const analyzer = await openAnalyzer({ checkpoint: o.checkpoint, log: o.log });
    try {
      const index = await openIndex(o.db, analyzer.checkpointId, analyzer.checkpoint);
      const label = await resolveLabel(index, o.filter.label);
      const vector = (await analyzer.analyze(query, { intercept: o.intercept, series: o.series })).embedding;
      return await index.search(vector, { ...o.filter, label });
    } finally {
      analyzer.dispose();
    }
  }
  const ckpt = loadT3dCheckpoint(o.checkpoint, o.log);
  ckpt.model.dispose();
  const index = await openIndex(o.db, checkpointId(ckpt.dir), ckpt.dir);
  const label = await resolveLabel(index, o.filter.label);
  const vector = await index.vectorOf(query);
  if (!vector) throw new Error(`similar: '${query}' is neither a scan on disk nor an id in the index`);
  return index.search(vector, { ...o.filter, label, excludeId: query });
}
