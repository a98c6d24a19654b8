// Optimizer base: parameter groups with per-group hyper-parameters and named per-parameter state.
import { type Tensor } from '../tensor.js';
import { noGrad } from '../autograd.js';
import { tidy } from '../scope.js';
import { zerosLike } from '../creation.js';

export interface ParamGroup<H> {
  params: Tensor[];
  /** Hyper-parameters of this group; `lr` is what schedules change. */
  options: H & { lr: number };
  /** The lr the group started with; schedules scale it. */
  initialLr: number;
}
export type GroupSpec<H> = { params: Tensor[] } & Partial<H> & { lr?: number };
/** One parameter's share of a step: its gradient, its state and its step count (1 at its first update). */
export interface ParamUpdate {
  param: Tensor;
  grad: Tensor;
  state: Map<string, Tensor>;
  step: number;
}

/** Saved optimizer state: tensors by name plus JSON-able scalars. */
export interface OptimizerState {
  tensors: Map<string, Tensor>;
  meta: { kind: string; step: number[]; groups: Record<string, unknown>[] };
}

export abstract class Optimizer<H extends object> {
  readonly groups: ParamGroup<H>[];
  /** Per-parameter state tensors, e.g. exp_avg; index = position of the parameter over all groups. */
  protected readonly state = new Map<number, Map<string, Tensor>>();
  protected readonly steps = new Map<number, number>();

  protected constructor(
    params: Tensor[] | GroupSpec<H>[],
    defaults: H & { lr: number },
    readonly kind: string,
  ) {
    const specs = (params.length > 0 && !isGroup(params[0]) ? [{ params }] : params) as GroupSpec<H>[];
    this.groups = specs.map((spec) => {
      const { params: ps, ...over } = spec;
      const options = { ...defaults, ...(over as Partial<H>) } as H & { lr: number };
      return { params: ps, options, initialLr: options.lr };
    });
    if (this.groups.every((g) => g.params.length === 0)) throw new Error(`${kind}: no parameters to optimise`);
  }

  /** Applies one update to every parameter that has a gradient, a group at a time. */
  step(): void {
    noGrad(() => {
      let index = 0;
      for (const group of this.groups) {
        const items: ParamUpdate[] = [];
        for (const param of group.params) {
          const i = index++;
          const grad = param.grad;
          if (!grad) continue;
          const state = this.state.get(i) ?? new Map<string, Tensor>();
          this.state.set(i, state);
          const step = (this.steps.get(i) ?? 0) + 1;
          this.steps.set(i, step);
          items.push({ param, grad, state, step });
        }
        try {
          if (items.length) tidy(() => this.updateGroup(items, group.options));
        } finally {
          for (const it of items) it.grad.dispose();
        }
      }
    });
  }

  /** Sets gradients to none (PyTorch's default set_to_none=True). */
  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) p.zeroGrad();
  }

  /** Creates a long-lived state tensor (kept out of scopes). */
  protected stateTensor(s: Map<string, Tensor>, name: string, make: () => Tensor): Tensor {
    let t = s.get(name);
    if (!t) {
      t = make().keep();
      s.set(name, t);
    }
    return t;
  }

  /** Updates a group's parameters that have gradients (inside a tidy scope; the caller disposes the gradients). */
  protected abstract updateGroup(items: ParamUpdate[], h: H & { lr: number }): void;

  stateDict(): OptimizerState {
    const tensors = new Map<string, Tensor>();
    for (const [i, s] of this.state) for (const [name, t] of s) tensors.set(`state.${i}.${name}`, t);
    const count = this.groups.reduce((n, g) => n + g.params.length, 0);
    return {
      tensors,
      meta: {
        kind: this.kind,
        step: Array.from({ length: count }, (_, i) => this.steps.get(i) ?? 0),
        groups: this.groups.map((g) => ({ ...g.options, initial_lr: g.initialLr })),
      },
    };
  }

  /** Restores state saved by stateDict() of an optimizer over the same parameters. Copies tensors. */
  loadStateDict(saved: OptimizerState): void {
    if (saved.meta.kind !== this.kind)
      throw new Error(`loadStateDict: state is for ${saved.meta.kind}, this optimizer is ${this.kind}`);
    const count = this.groups.reduce((n, g) => n + g.params.length, 0);
    if (saved.meta.step.length !== count || saved.meta.groups.length !== this.groups.length) {
      throw new Error(
        `loadStateDict: saved state has ${saved.meta.step.length} parameters in ${saved.meta.groups.length} groups, ` +
          `optimizer has ${count} in ${this.groups.length}`,
      );
    }
    for (const s of this.state.values()) for (const t of s.values()) t.dispose();
    this.state.clear();
    this.steps.clear();
    saved.meta.step.forEach((n, i) => {
      if (n > 0) this.steps.set(i, n);
    });
    saved.meta.groups.forEach((h, gi) => {
      const { initial_lr: initialLr, ...options } = h as { initial_lr: number } & Record<string, unknown>;
      const group = this.groups[gi]!;
      Object.assign(group.options, options);
      group.initialLr = initialLr;
    });
    const params = this.groups.flatMap((g) => g.params);
    for (const [key, t] of saved.tensors) {
      const m = /^state\.(\d+)\.(.+)$/.exec(key);
      if (!m) throw new Error(`loadStateDict: unexpected optimizer state key '${key}'`);
      const i = Number(m[1]);
      if (i >= count) throw new Error(`loadStateDict: state for parameter ${i} but optimizer has ${count}`);
      const s = this.state.get(i) ?? new Map<string, Tensor>();
      // moments take their parameter's layout (channels-last too), as when created: the fused CPU step needs it
      const p = params[i]!;
      const same =
        t.shape.length === p.shape.length && t.shape.every((n, d) => n === p.shape[d]) && t.dtype === p.dtype;
      s.set(m[2]!, (same ? noGrad(() => zerosLike(p).copy_(t)) : t.clone()).keep());
      this.state.set(i, s);
    }
  }

  dispose(): void {
    for (const s of this.state.values()) for (const t of s.values()) t.dispose();
    this.state.clear();
  }
}

function isGroup(x: unknown): boolean {
  return typeof x === 'object' && x !== null && 'params' in x;
}
