// The light decoder of the optional text-conditioned restoration objective (DESIGN §4.5): it upsamples the
// vision encoder's feature map back to the input resolution, and the report vector modulates every stage
// through FiLM (per-channel scale and shift), so the report can tell the decoder what the masked regions hold.
import * as torch from '../torch/index.js';
import { F, nn, type Tensor } from '../torch/index.js';

type Triple = [number, number, number];

export interface RestorationDecoderConfig {
  inChannels: number;
  /** the encoder's downsampling factor; the decoder has ceil(log2(stride)) ×2 stages */
  outputStride: number;
  /** size of the report vector that drives FiLM; 0 = no text conditioning */
  textDim: number;
  /** channels never drop below this */
  minChannels?: number;
}

export class RestorationDecoder extends nn.Module {
  readonly up: nn.ModuleList<nn.ConvTranspose3d>;
  readonly norm: nn.ModuleList<nn.GroupNorm>;
  readonly film?: nn.ModuleList<nn.Linear>;
  readonly head: nn.Conv3d;

  constructor(readonly config: RestorationDecoderConfig) {
    super();
    const stages = Math.max(1, Math.ceil(Math.log2(config.outputStride)));
    const up: nn.ConvTranspose3d[] = [];
    const norm: nn.GroupNorm[] = [];
    const film: nn.Linear[] = [];
    let c = config.inChannels;
    for (let s = 0; s < stages; s++) {
      const next = Math.max(config.minChannels ?? 8, Math.floor(c / 2));
      up.push(new nn.ConvTranspose3d(c, next, [2, 2, 2], { stride: 2 }));
      norm.push(
        new nn.GroupNorm(
          [8, 4, 2, 1].find((g) => next % g === 0)!,
          next,
        ),
      );
      if (config.textDim > 0) {
        // zero-initialised: FiLM starts as the identity, so text conditioning is learned, not imposed
        const f = new nn.Linear(config.textDim, 2 * next);
        torch.noGrad(() => {
          f.weight.zero_();
          f.bias!.zero_();
        });
        film.push(f);
      }
      c = next;
    }
    this.up = this.registerModule('up', new nn.ModuleList(up));
    this.norm = this.registerModule('norm', new nn.ModuleList(norm));
    if (film.length) this.film = this.registerModule('film', new nn.ModuleList(film));
    this.head = this.registerModule('head', new nn.Conv3d(c, 1, [1, 1, 1]));
  }

  /** featureMap (B, C, d, h, w), text (B, textDim) or undefined → restored volume (B, 1, ...outShape). */
  forward(featureMap: Tensor, outShape: Triple, text?: Tensor): Tensor {
    if (text && !this.film)
      throw new Error('RestorationDecoder: built without text conditioning (textDim 0) but given a report vector');
    return torch.tidy(() => {
      let h = featureMap;
      for (let s = 0; s < this.up.length; s++) {
        h = this.norm.at(s).forward(this.up.at(s).forward(h));
        if (text && this.film) {
          const [gamma, beta] = this.film.at(s).forward(text).unsqueeze(2).unsqueeze(3).unsqueeze(4).chunk(2, 1) as [
            Tensor,
            Tensor,
          ];
          h = h.mul(gamma.add(1)).add(beta);
        }
        h = h.relu();
      }
      const out = this.head.forward(h);
      const same = out.shape.slice(2).every((s, i) => s === outShape[i]);
      return same ? out : F.interpolate(out, outShape, 'trilinear');
    });
  }
}
