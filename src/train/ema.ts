// An exponential-moving-average copy of the model (the momentum teacher of BYOL / DINO / MoCo): it gives the
// TMA code views targets that move slowly, so the prototypes are not chasing a target that shifts every step.
// Options from DINO: a cosine momentum schedule towards 1, and BatchNorm with batch statistics (DINO never puts its
// teacher in eval mode); by default the momentum is constant and BatchNorm uses the running statistics.
import * as torch from '../torch/index.js';
import { nn, type Tensor } from '../torch/index.js';
import { type T3dModel } from '../models/t3d.js';

export interface EmaOptions {
  /** 'cosine': m(t) = 1 − (1 − m₀)(1 + cos(π t / steps)) / 2, DINO's schedule from m₀ to 1 over `steps` */
  schedule?: 'constant' | 'cosine';
  steps?: number;
  /** 'train': the teacher's BatchNorm layers normalise with the batch's statistics */
  batchNorm?: 'eval' | 'train';
}

export class EmaTeacher {
  /** `model` is a fresh instance of the student's architecture; it is overwritten with the student's state. */
  constructor(
    readonly model: T3dModel,
    student: T3dModel,
    readonly momentum: number,
    private readonly o: EmaOptions = {},
  ) {
    if (o.schedule === 'cosine' && !(Number.isInteger(o.steps) && o.steps! >= 1))
      throw new Error(`EMA teacher: a cosine momentum schedule needs the run's steps, got ${o.steps}`);
    if (!(momentum > 0 && momentum < 1)) throw new Error(`EMA teacher: momentum must be in (0, 1), got ${momentum}`);
    torch.noGrad(() => {
      for (const [k, t] of model.stateDict()) t.copy_(student.stateDict().get(k)!);
    });
    model.freeze();
    model.eval(); // no dropout; BatchNorm uses its (averaged) running statistics unless batchNorm is 'train'
    if (o.batchNorm === 'train') for (const [, m] of model.namedModules()) if (m instanceof nn.BatchNorm3d) m.train();
  }

  /** The momentum after optimiser step `step` (0-based). */
  momentumAt(step: number): number {
    if (this.o.schedule !== 'cosine') return this.momentum;
    const t = Math.min(1, step / this.o.steps!);
    return 1 - ((1 - this.momentum) * (1 + Math.cos(Math.PI * t))) / 2;
  }

  /** teacher ← m · teacher + (1 − m) · student for parameters (m at optimiser step `step`); buffers (BatchNorm
   * statistics) are copied. */
  update(student: T3dModel, step = 0): void {
    const params = new Map(student.namedParameters());
    const buffers = new Map(student.namedBuffers());
    const m = this.momentumAt(step);
    torch.noGrad(() => {
      for (const [k, t] of this.model.namedParameters()) t.lerp_(params.get(k)!, 1 - m);
      for (const [k, t] of this.model.namedBuffers()) t.copy_(buffers.get(k)!);
    });
  }

  /** Tensors for checkpoints, named `teacher.<state-dict name>` (exact resume needs them). */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.model.stateDict()].map(([k, t]) => [`teacher.${k}`, t]));
  }
  loadStateDict(state: Map<string, Tensor>): void {
    const own = this.model.stateDict();
    torch.noGrad(() => {
      for (const [k, t] of own) {
        const saved = state.get(`teacher.${k}`);
        if (!saved) throw new Error(`EMA teacher: the checkpoint has no 'teacher.${k}'`);
        t.copy_(saved);
      }
    });
  }
}
