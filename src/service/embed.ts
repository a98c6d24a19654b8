// Embeddings to share: a checkpoint + volumes (a preprocessed cache split) or reports (a text file, one per line) →
// L2-normalised embeddings in a safetensors file, with the row names, checkpoint and kind in its metadata.
import { readFileSync } from 'node:fs';
import * as torch from '../torch/index.js';
import { embedSplit, embedTexts } from '../inference/embed.js';
import { assertCachePreset } from '../data/ensure-cache.js';
import { loadT3dCheckpoint } from '../train/factory.js';

export interface EmbedExport {
  checkpoint: string;
  out: string;
  /** a cache and its split (default 'valid'), or a file of reports */
  cache?: string;
  split?: string;
  reports?: string;
  device?: string;
}

export async function exportEmbeddings(o: EmbedExport): Promise<{ rows: number; size: number; kind: string }> {
  const { model, tokenizer, config, dir, preset } = loadT3dCheckpoint(o.checkpoint);
  const device = o.device ?? 'cpu';
  try {
    if (device !== 'cpu') model.to({ device });
    let names: string[];
    let emb: torch.Tensor;
    if (o.reports) {
      names = readFileSync(o.reports, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
      if (names.length === 0) throw new Error(`${o.reports}: no reports (one per line expected)`);
      emb = embedTexts(model, tokenizer, names, config.data.maxTokens, device);
    } else {
      if (!o.cache) throw new Error('embed: give a cache or a file of reports');
      assertCachePreset(o.cache, preset, dir);
      const e = await embedSplit(model, tokenizer, o.cache, o.split ?? 'valid', {
        device,
        maxTokens: config.data.maxTokens,
      });
      names = e.names;
      emb = e.volumes;
      e.reports?.dispose();
    }
    const kind = o.reports ? 'report' : 'volume';
    const size = emb.size(1);
    torch.tidy(() =>
      torch.saveSafetensors(
        o.out,
        { embeddings: emb.to('cpu') },
        { names: JSON.stringify(names), checkpoint: dir, kind },
      ),
    );
    emb.dispose();
    return { rows: names.length, size, kind };
  } finally {
    model.dispose();
  }
}
