// Merlin's image encoder (MIT): torchvision's ResNet-152 inflated to 3D as in I3D, with two 1×1×1 Conv3d heads on
// the pooled features — a 512-d contrastive embedding and 1692 phenotype logits. The facts it follows (layout,
// strides, key names) are in docs/models/merlin.md; state-dict names are the released checkpoint's, under
// `encode_image.i3_resnet.`. The bottleneck is resnet3d.ts's Block (same order: 1×1×1, 3×3×3 with the stride in
// all three dims, 1×1×1; shortcut conv without bias).
import * as torch from '../torch/index.js';
import { F, nn, type Tensor } from '../torch/index.js';
import { Block } from './resnet3d.js';

export interface MerlinImageConfig {
  /** bottlenecks per stage: ResNet-152's [3, 8, 36, 3] */
  layers: [number, number, number, number];
  /** stem channels (the stages use width, 2·width, 4·width, 8·width planes, times 4 out) */
  width: number;
  /** contrastive_head outputs */
  embedDim: number;
  /** classifier outputs: phenotypes (1692) or the five-year model's 6 */
  classes: number;
}
export const MERLIN_RESNET152: MerlinImageConfig = { layers: [3, 8, 36, 3], width: 64, embedDim: 512, classes: 1692 };

export interface MerlinImageOutput {
  /** (B, 8·width·4) the pooled layer-4 features: Merlin's "image embedding" (ImageEmbedding=True) */
  features: Tensor;
  /** (B, embedDim) contrastive_head's output, before the L2 normalisation of the CLIP loss */
  embedding: Tensor;
  /** (B, classes) classifier's logits (phenotypes; sigmoid for probabilities) */
  logits: Tensor;
}

/** The module under `encode_image.i3_resnet`: conv1, bn1, layer1..4, classifier, contrastive_head. */
export class MerlinI3ResNet extends nn.Module {
  readonly conv1: nn.Conv3d;
  readonly bn1: nn.BatchNorm3d;
  readonly layers: nn.Sequential[] = [];
  /** absent when built as a trunk only (MerlinVisionEncoder) */
  readonly classifier?: nn.Conv3d;
  readonly contrastiveHead?: nn.Conv3d;

  constructor(
    readonly config: MerlinImageConfig,
    heads = true,
  ) {
    super();
    const w = config.width;
    // the 7×7 stem inflated to 3×7×7, stride 1 along the slices, 2 in-plane; 3 input channels (the CT repeated)
    this.conv1 = this.registerModule(
      'conv1',
      new nn.Conv3d(3, w, [3, 7, 7], { stride: [1, 2, 2], padding: [1, 3, 3], bias: false }),
    );
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm3d(w));
    let inPlanes = w;
    config.layers.forEach((n, li) => {
      const planes = w * 2 ** li;
      const blocks: Block[] = [];
      for (let b = 0; b < n; b++) {
        const stride = b === 0 && li > 0 ? 2 : 1;
        blocks.push(new Block(inPlanes, planes, stride, true, 'batch', b === 0, false));
        inPlanes = planes * 4;
      }
      this.layers.push(this.registerModule(`layer${li + 1}`, new nn.Sequential(...blocks)));
    });
    if (!heads) return;
    this.classifier = this.registerModule('classifier', new nn.Conv3d(inPlanes, config.classes, 1));
    this.contrastiveHead = this.registerModule('contrastive_head', new nn.Conv3d(inPlanes, config.embedDim, 1));
  }

  /**
   * x: (B, 1, X, Y, Z) as Merlin's loader yields it (RAS: X to the right, Y anterior, Z superior; 224×224×160 at
   * 1.5×1.5×3 mm, HU [−1000, 1000] → [0, 1]). `fromLps` makes it from this project's (B, 1, D, H, W) LPS layout.
   */
  forward(x: Tensor): MerlinImageOutput {
    const { classifier, contrastiveHead } = this;
    if (!classifier || !contrastiveHead) throw new Error('MerlinI3ResNet: built without its heads (use trunk)');
    return torch.tidy(() => {
      // → (B, 1, Z, X, Y): the slices play I3D's time
      const pooled = F.adaptiveAvgPool3d(this.trunk(x.permute(0, 1, 4, 2, 3)), 1);
      return {
        features: pooled.flatten(1),
        embedding: contrastiveHead.forward(pooled).flatten(1),
        logits: classifier.forward(pooled).flatten(1),
      };
    });
  }

  /** (B, 1, Z, X, Y) → layer 4's map (B, 32·width, z, x, y), before the pooling and the heads. */
  trunk(v: Tensor): Tensor {
    return torch.tidy(() => {
      // the stem in its own scope and each stage's input released once the next exists: at 224×224×160 the stem's
      // activations alone are ~0.5 GB each, and holding them to the end doubled the peak against PyTorch's
      let h = torch.tidy(() => {
        const stem = this.bn1.forward(this.conv1.forward(torch.cat([v, v, v], 1))).relu_();
        return F.maxPool3d(stem, 3, { stride: 2, padding: 1 });
      });
      for (const layer of this.layers) {
        const next = layer.forward(h);
        h.dispose();
        h = next;
      }
      return h;
    });
  }
}

/** Merlin's ImageEncoder wrapper: only there so that state-dict names carry `i3_resnet.` as released. */
export class MerlinImageEncoder extends nn.Module {
  readonly i3Resnet: MerlinI3ResNet;
  constructor(config: MerlinImageConfig = MERLIN_RESNET152) {
    super();
    this.i3Resnet = this.registerModule('i3_resnet', new MerlinI3ResNet(config));
  }
  forward(x: Tensor): MerlinImageOutput {
    return this.i3Resnet.forward(x);
  }
}

/**
 * This project's (B, 1, D, H, W) volume — slices superior, rows posterior, columns left (LPS) — in Merlin's
 * (B, 1, X, Y, Z) RAS layout: columns reversed become X, rows reversed become Y, slices become Z.
 */
export function fromLps(x: Tensor): Tensor {
  return torch.tidy(() => x.permute(0, 1, 4, 3, 2).flip([2, 3]));
}

/**
 * Merlin's image trunk as one of this project's vision encoders (an imported run's `visual`, train/formats/merlin.ts):
 * it takes (B, 1, D, H, W) in LPS like every encoder here and feeds the I3ResNet Merlin's (Z, X, Y) order — rows and
 * columns swapped and both reversed — then returns layer 4's map in LPS order again, and its mean. The contrastive
 * head is the ClipModel's visual projection (a 1×1×1 conv on the pooled features is a linear layer); the phenotype
 * classifier is not built.
 */
export class MerlinVisionEncoder extends nn.Module {
  readonly i3Resnet: MerlinI3ResNet;
  constructor(readonly config: MerlinImageConfig) {
    super();
    this.i3Resnet = this.registerModule('i3_resnet', new MerlinI3ResNet(config, false));
  }
  get outChannels(): number {
    return this.config.width * 32;
  }
  /** in-plane: the stem's 2, the max-pool's 2 and layers 2–4's 2 each */
  get outputStride(): number {
    return 32;
  }
  encode(x: Tensor): { featureMap: Tensor; pooled: Tensor } {
    return torch.tidy(() => {
      const map = this.i3Resnet.trunk(x.permute(0, 1, 2, 4, 3).flip([3, 4]));
      const featureMap = map.flip([3, 4]).permute(0, 1, 2, 4, 3);
      return { featureMap, pooled: featureMap.mean([2, 3, 4]) };
    });
  }
}
