// The engine's public surface: `import * as torch from './torch/index.js'`.
export { Generator } from './generator.js';
export { Tensor, type Device, type Scalar, type Reduction, type MemoryFormat } from './tensor.js';
export * from './dtype.js';
export * from './creation.js';
export * from './ops.js';
export * from './scope.js';
export * from './autograd.js';
export * from './system.js';
export * from './distributed.js';
export * from './profiler.js';
export * from './safetensors.js';
export * from './serialization.js';
export * from './gradcheck.js';
export * as F from './functional.js';
export * as nn from './nn.js';
export * as optim from './optim.js';
