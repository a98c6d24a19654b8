// Basic layers with PyTorch's parameter names, shapes and default initialisation.
import { type Tensor } from '../tensor.js';
import { empty, ones, zeros, scalar } from '../creation.js';
import * as F from '../functional.js';
import { Module } from './module.js';
import { defaultLayerInit_, fans } from './init.js';

/** Anything that maps one tensor to one tensor (what Sequential chains). */
export interface Layer {
  forward(x: Tensor): Tensor;
}

type Triple = number | [number, number, number];
const triple = (v: Triple): [number, number, number] => (Array.isArray(v) ? v : [v, v, v]);

export class Linear extends Module implements Layer {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    bias = true,
  ) {
    super();
    const w = this.registerParameter('weight', empty([outFeatures, inFeatures]))!;
    const b = bias ? this.registerParameter('bias', empty([outFeatures])) : undefined;
    defaultLayerInit_(w, b);
  }
  get weight(): Tensor {
    return this.param('weight');
  }
  get bias(): Tensor | undefined {
    return this.getParameter('bias');
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

export interface Conv3dOptions {
  stride?: Triple;
  padding?: Triple;
  dilation?: Triple;
  groups?: number;
  bias?: boolean;
}

export class Conv3d extends Module implements Layer {
  readonly kernelSize: [number, number, number];
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Triple,
    readonly options: Conv3dOptions = {},
  ) {
    super();
    const groups = options.groups ?? 1;
    if (inChannels % groups || outChannels % groups)
      throw new Error(`Conv3d: channels ${inChannels}→${outChannels} not divisible by groups ${groups}`);
    this.kernelSize = triple(kernelSize);
    const w = this.registerParameter('weight', empty([outChannels, inChannels / groups, ...this.kernelSize]))!;
    const b = (options.bias ?? true) ? this.registerParameter('bias', empty([outChannels])) : undefined;
    defaultLayerInit_(w, b);
  }
  get weight(): Tensor {
    return this.param('weight');
  }
  get bias(): Tensor | undefined {
    return this.getParameter('bias');
  }
  forward(x: Tensor): Tensor {
    return F.conv3d(x, this.weight, this.bias, this.options);
  }
}

export class ConvTranspose3d extends Module implements Layer {
  readonly kernelSize: [number, number, number];
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Triple,
    readonly options: Conv3dOptions & { outputPadding?: Triple } = {},
  ) {
    super();
    const groups = options.groups ?? 1;
    this.kernelSize = triple(kernelSize);
    const w = this.registerParameter('weight', empty([inChannels, outChannels / groups, ...this.kernelSize]))!;
    const b = (options.bias ?? true) ? this.registerParameter('bias', empty([outChannels])) : undefined;
    // PyTorch takes fan_in from dim 1 of the transposed weight (out/groups × kernel).
    defaultLayerInit_(w, b, fans(w.shape).fanIn);
  }
  get weight(): Tensor {
    return this.param('weight');
  }
  get bias(): Tensor | undefined {
    return this.getParameter('bias');
  }
  forward(x: Tensor): Tensor {
    return F.convTranspose3d(x, this.weight, this.bias, this.options);
  }
}

/** BatchNorm over (N, C, D, H, W); running statistics are buffers, updated in training mode. */
export class BatchNorm3d extends Module implements Layer {
  constructor(
    readonly numFeatures: number,
    readonly eps = 1e-5,
    readonly momentum = 0.1,
    readonly affine = true,
    readonly trackRunningStats = true,
  ) {
    super();
    if (affine) {
      this.registerParameter('weight', ones([numFeatures]));
      this.registerParameter('bias', zeros([numFeatures]));
    }
    if (trackRunningStats) {
      this.registerBuffer('running_mean', zeros([numFeatures]));
      this.registerBuffer('running_var', ones([numFeatures]));
      this.registerBuffer('num_batches_tracked', scalar(0, { dtype: 'int64' }));
    }
  }
  forward(x: Tensor): Tensor {
    if (x.ndim !== 5) throw new Error(`BatchNorm3d: expected (N, C, D, H, W), got [${x.shape.join(', ')}]`);
    const useBatchStats = this.training || !this.trackRunningStats;
    if (this.training && this.trackRunningStats) this.buf('num_batches_tracked').add_(1);
    return F.batchNorm(x, {
      weight: this.getParameter('weight'),
      bias: this.getParameter('bias'),
      runningMean: this.getBuffer('running_mean'),
      runningVar: this.getBuffer('running_var'),
      training: useBatchStats,
      momentum: this.momentum,
      eps: this.eps,
    });
  }
}

export class GroupNorm extends Module implements Layer {
  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    readonly eps = 1e-5,
    affine = true,
  ) {
    super();
    if (numChannels % numGroups)
      throw new Error(`GroupNorm: ${numChannels} channels not divisible by ${numGroups} groups`);
    if (affine) {
      this.registerParameter('weight', ones([numChannels]));
      this.registerParameter('bias', zeros([numChannels]));
    }
  }
  forward(x: Tensor): Tensor {
    return F.groupNorm(x, this.numGroups, this.getParameter('weight'), this.getParameter('bias'), this.eps);
  }
}

export class LayerNorm extends Module implements Layer {
  readonly normalizedShape: number[];
  constructor(
    normalizedShape: number | number[],
    readonly eps = 1e-5,
    elementwiseAffine = true,
  ) {
    super();
    this.normalizedShape = Array.isArray(normalizedShape) ? normalizedShape : [normalizedShape];
    if (elementwiseAffine) {
      this.registerParameter('weight', ones(this.normalizedShape));
      this.registerParameter('bias', zeros(this.normalizedShape));
    }
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, this.getParameter('weight'), this.getParameter('bias'), this.eps);
  }
}

export class Embedding extends Module implements Layer {
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    readonly paddingIdx?: number,
  ) {
    super();
    const w = this.registerParameter('weight', empty([numEmbeddings, embeddingDim]))!;
    w.normal_(0, 1);
    if (paddingIdx !== undefined) {
      const row = w.select(0, paddingIdx);
      row.zero_();
      row.dispose();
    }
  }
  get weight(): Tensor {
    return this.param('weight');
  }
  forward(indices: Tensor): Tensor {
    return F.embedding(this.weight, indices, this.paddingIdx ?? -1);
  }
}

export class Dropout extends Module implements Layer {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new Error(`Dropout: p must be in [0, 1], got ${p}`);
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training);
  }
}
