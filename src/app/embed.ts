// `t3d embed`: a trained checkpoint + volumes (a preprocessed cache split) or reports (a text file, one
// per line) → L2-normalised embeddings in safetensors, with the row names in its metadata.
import { readFileSync } from 'node:fs';
import * as torch from '../torch/index.js';
import { loadT3dCheckpoint } from '../train/factory.js';
import { embedSplit, embedTexts } from '../eval/tasks/zeroshot.js';
import { parseOptions } from './args.js';

export async function runEmbed(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    checkpoint: 'string',
    cache: 'string',
    split: 'string',
    reports: 'string',
    out: 'string',
    device: 'string',
  });
  if (!o.checkpoint || !o.out || (!o.cache && !o.reports))
    throw new Error(
      'embed: --checkpoint <dir>, --out <file.safetensors> and one of --cache <dir> / --reports <file> are required',
    );
  const { model, tokenizer, config, dir } = loadT3dCheckpoint(o.checkpoint as string);
  const device = (o.device as string | undefined) ?? 'cpu';
  if (device !== 'cpu') model.to({ device });
  let names: string[];
  let emb: torch.Tensor;
  if (o.reports) {
    names = readFileSync(o.reports as string, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    if (names.length === 0) throw new Error(`${o.reports}: no reports (one per line expected)`);
    emb = embedTexts(model, tokenizer, names, config.data.maxTokens, device);
  } else {
    const e = await embedSplit(model, tokenizer, o.cache as string, (o.split as string | undefined) ?? 'valid', {
      device,
      maxTokens: config.data.maxTokens,
    });
    names = e.names;
    emb = e.volumes;
    e.reports.dispose();
  }
  torch.saveSafetensors(
    o.out as string,
    { embeddings: emb.to('cpu') },
    { names: JSON.stringify(names), checkpoint: dir, kind: o.reports ? 'report' : 'volume' },
  );
  console.log(`embed: ${names.length} ${o.reports ? 'report' : 'volume'} embeddings of size ${emb.size(1)} → ${o.out}`);
}
