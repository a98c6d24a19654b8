// `t3d embed`: volumes (a preprocessed cache split) or reports (a text file, one per line) → embeddings in
// safetensors (service/embed.ts).
import { exportEmbeddings } from '../service/embed.js';
import { parseOptions } from './args.js';

export async function runEmbed(args: string[]): Promise<void> {
  const o = parseOptions(args, { string: ['checkpoint', 'cache', 'split', 'reports', 'out', 'device'] });
  if (!o.checkpoint || !o.out || (!o.cache && !o.reports)) {
    throw new Error(
      'embed: --checkpoint <dir>, --out <file.safetensors> and one of --cache <dir> / --reports <file> are required',
    );
  }
  const r = await exportEmbeddings({ ...o, checkpoint: o.checkpoint, out: o.out });
  console.log(`embed: ${r.rows} ${r.kind} embeddings of size ${r.size} → ${o.out}`);
}
