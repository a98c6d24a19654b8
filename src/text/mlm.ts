// Masked-language-model inputs as HF's DataCollatorForLanguageModeling makes them: each non-special token is chosen
// with probability maskProb; a chosen token becomes [MASK] 80 % of the time, a random vocabulary token 10 %, and
// stays itself 10 %; labels hold the original id at chosen positions and -100 (ignored) elsewhere.
import { type Rng } from '../util/rng.js';

export interface MlmOptions {
  maskProb: number;
  maskId: number;
  vocabSize: number;
  /** ids never chosen ([CLS], [SEP], [PAD], …) */
  specialIds: ReadonlySet<number>;
}

export function maskTokens(
  inputIds: Int32Array,
  o: MlmOptions,
  rng: Rng,
): { inputIds: Int32Array; labels: Int32Array } {
  if (!(o.maskProb > 0 && o.maskProb < 1)) throw new Error(`maskTokens: maskProb ${o.maskProb} must be in (0, 1)`);
  const ids = Int32Array.from(inputIds);
  const labels = new Int32Array(ids.length).fill(-100);
  for (let i = 0; i < ids.length; i++) {
    if (o.specialIds.has(ids[i]!) || !rng.bool(o.maskProb)) continue;
    labels[i] = ids[i]!;
    const r = rng.next();
    if (r < 0.8) ids[i] = o.maskId;
    else if (r < 0.9) ids[i] = rng.int(0, o.vocabSize - 1);
  }
  return { inputIds: ids, labels };
}
