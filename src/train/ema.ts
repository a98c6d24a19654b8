// An exponential-moving-average copy of the model (the momentum teacher of BYOL / DINO / MoCo): it gives the
// TMA code views targets that move slowly, so the prototypes are not chasing a target that shifts every step.
import * as torch from '../torch/index.js';
import { type Tensor } from '../torch/index.js';
import { type T3dModel } from '../models/t3d.js';

export class EmaTeacher {
  /** `model` is a fresh instance of the student's architecture; it is overwritten with the student's state. */
  constructor(
    readonly model: T3dModel,
    student: T3dModel,
    readonly momentum: number,
  ) {
    if (!(momentum > 0 && momentum < 1)) throw new Error(`EMA teacher: momentum must be in (0, 1), got ${momentum}`);
    torch.noGrad(() => {
      for (const [k, t] of model.stateDict()) t.copy_(student.stateDict().get(k)!);
    });
    model.freeze();
    model.eval(); // no dropout; BatchNorm uses its (averaged) running statistics
  }

  /** teacher ← m · teacher + (1 − m) · student for parameters; buffers (BatchNorm statistics) are copied. */
  update(student: T3dModel): void {
    const params = new Map(student.namedParameters());
    const buffers = new Map(student.namedBuffers());
    torch.noGrad(() => {
      for (const [k, t] of this.model.namedParameters()) t.lerp_(params.get(k)!, 1 - this.momentum);
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
