// The text side of the report-generation task: teacher-forcing targets and loss over the tokenizer's ids, and
// generated ids back to text.
import * as torch from '../../torch/index.js';
import { type Tensor } from '../../torch/index.js';
import { type ReportDecoder } from '../../models/report-decoder.js';
import { type WordPieceTokenizer } from '../../text/wordpiece.js';

const IGNORE = -100;

/**
 * Teacher-forcing tensors for reports: input = [CLS] t1 … tn, target = t1 … tn [SEP] (padding → ignore index).
 */
export function encodeTargets(
  tokenizer: WordPieceTokenizer,
  reports: string[],
  maxLength: number,
  device?: string,
): { input: Tensor; target: Tensor } {
  const enc = tokenizer.encodeBatch(reports, { maxLength, padding: 'longest' });
  const [B, W] = enc.shape;
  const input = new BigInt64Array(B * (W - 1)),
    target = new BigInt64Array(B * (W - 1));
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < W - 1; i++) {
      input[b * (W - 1) + i] = BigInt(enc.inputIds[b * W + i]!);
      target[b * (W - 1) + i] = BigInt(enc.attentionMask[b * W + i + 1] ? enc.inputIds[b * W + i + 1]! : IGNORE);
    }
  }
  return { input: torch.tensor(input, [B, W - 1], { device }), target: torch.tensor(target, [B, W - 1], { device }) };
}

/** Mean next-token cross-entropy over the non-padding targets. */
export function teacherForcingLoss(
  decoder: ReportDecoder,
  visualTokens: Tensor,
  input: Tensor,
  target: Tensor,
): Tensor {
  return torch.tidy(() => {
    const logits = decoder.forward(visualTokens, input);
    return torch.F.crossEntropy(logits.reshape(-1, decoder.config.vocabSize), target.reshape(-1), {
      ignoreIndex: IGNORE,
    });
  });
}

/**
 * Text of generated ids: the tokenizer's decode, without the spaces WordPiece cleanup leaves in "2. 5",
 * "ground - glass".
 */
export function detokenize(tokenizer: WordPieceTokenizer, ids: number[]): string {
  return tokenizer
    .decode(ids)
    .replace(/(\d)\. (\d)/g, '$1.$2')
    .replace(/(\w) - (?=\w)/g, '$1-')
    .replace(/\( /g, '(')
    .replace(/ \)/g, ')')
    .replace(/ ([:;])/g, '$1');
}
