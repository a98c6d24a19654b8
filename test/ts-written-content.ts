// The tensors our writer puts in test/fixtures/engine/ts_written.safetensors (one per dtype). Shared by
// the script that writes the fixture and the test that compares Python's reading of it.
import * as torch from '../src/torch/index.js';
import { type DType, type Tensor } from '../src/torch/index.js';

export const TS_WRITTEN_DTYPES: DType[] = ['bool', 'uint8', 'int8', 'int16', 'int32', 'int64', 'float16', 'bfloat16', 'float32', 'float64'];

/** Values chosen to be exact in every dtype they are stored in. */
export function tsWrittenValues(dtype: DType): number[] {
  const base = [0, 1, -2, 3, 5, -8];
  switch (dtype) {
    case 'bool': return base.map((v) => (v !== 0 ? 1 : 0));
    case 'uint8': return base.map((v) => Math.abs(v) * 30);
    case 'int64': return base.map((v) => v * 2 ** 40);
    case 'float16': case 'bfloat16': return base.map((v) => v / 4);
    default: return base.map((v) => v * 7);
  }
}

export function tsWrittenTensors(): Map<string, Tensor> {
  return new Map(TS_WRITTEN_DTYPES.map((dt) => [`t_${dt}`, torch.tensor(tsWrittenValues(dt), [2, 3], { dtype: dt })]));
}
