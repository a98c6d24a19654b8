// nn.Module: parameters, buffers and submodules registered by attribute name, so state-dict keys are
// the same dotted paths PyTorch / Hugging Face / MONAI use.
import { type MemoryFormat, type Tensor } from '../tensor.js';
import { noGrad } from '../autograd.js';

export interface MoveTarget {
  device?: string;
  dtype?: 'float32' | 'float64' | 'float16' | 'bfloat16';
  memoryFormat?: MemoryFormat;
}

export abstract class Module {
  training = true;
  private readonly params = new Map<string, Tensor | undefined>();
  private readonly bufs = new Map<string, Tensor | undefined>();
  private readonly children = new Map<string, Module>();

  /** Registers a trainable tensor (it becomes long-lived and requires grad). */
  protected registerParameter(name: string, t: Tensor | undefined): Tensor | undefined {
    this.params.set(name, t ? t.keep().requiresGrad_(true) : undefined);
    return t;
  }
  /** Registers persistent state saved in the state dict (e.g. BatchNorm running stats). */
  protected registerBuffer(name: string, t: Tensor): void {
    this.bufs.set(name, t.keep());
  }
  /** A registered parameter; layers read through this so that to() can swap tensors. */
  protected param(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new Error(`${this.constructor.name}: parameter '${name}' is not set`);
    return t;
  }
  protected buf(name: string): Tensor {
    const t = this.bufs.get(name);
    if (!t) throw new Error(`${this.constructor.name}: buffer '${name}' is not set`);
    return t;
  }
  protected registerModule<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  getParameter(name: string): Tensor | undefined {
    return this.params.get(name);
  }
  getBuffer(name: string): Tensor | undefined {
    return this.bufs.get(name);
  }
  getSubmodule(name: string): Module | undefined {
    return this.children.get(name);
  }

  *namedChildren(): Iterable<[string, Module]> {
    yield* this.children;
  }
  *namedModules(prefix = ''): Iterable<[string, Module]> {
    yield [prefix, this];
    for (const [n, m] of this.children) yield* m.namedModules(prefix ? `${prefix}.${n}` : n);
  }
  *namedParameters(prefix = ''): Iterable<[string, Tensor]> {
    for (const [n, p] of this.params) if (p) yield [prefix ? `${prefix}.${n}` : n, p];
    for (const [n, m] of this.children) yield* m.namedParameters(prefix ? `${prefix}.${n}` : n);
  }
  *namedBuffers(prefix = ''): Iterable<[string, Tensor]> {
    for (const [n, b] of this.bufs) if (b) yield [prefix ? `${prefix}.${n}` : n, b];
    for (const [n, m] of this.children) yield* m.namedBuffers(prefix ? `${prefix}.${n}` : n);
  }
  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }
  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.numel, 0);
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /** Stops gradients to every parameter (e.g. a frozen text encoder). */
  freeze(frozen = true): this {
    for (const p of this.parameters()) p.requiresGrad_(!frozen);
    return this;
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  /** Parameters and buffers by dotted name. The tensors are the module's own (not copies). */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /**
   * Copies values in by name. strict: every key must match both ways and shapes must agree.
   * Returns the keys that were missing from `state` and the unexpected ones.
   */
  loadStateDict(state: Map<string, Tensor>, strict = true): { missing: string[]; unexpected: string[] } {
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !state.has(k));
    const unexpected = [...state.keys()].filter((k) => !own.has(k));
    if (strict && (missing.length || unexpected.length)) {
      throw new Error(
        `loadStateDict: missing keys [${missing.join(', ')}], unexpected keys [${unexpected.join(', ')}]`,
      );
    }
    for (const [k, dst] of own) {
      const src = state.get(k);
      if (!src) continue;
      if (src.shape.join(',') !== dst.shape.join(',')) {
        throw new Error(
          `loadStateDict: '${k}' has shape [${src.shape.join(', ')}] but the module expects [${dst.shape.join(', ')}]`,
        );
      }
    }
    noGrad(() => {
      for (const [k, dst] of own) {
        const src = state.get(k);
        if (src) dst.copy_(src);
      }
    });
    return { missing, unexpected };
  }

  /**
   * Moves parameters and buffers to a device/dtype in place (handles keep their identity). `memoryFormat` lays out
   * the 4-D/5-D ones (convolution weights) as PyTorch's `module.to(memory_format=...)` does; convolutions then
   * return that layout, and the state dict is the same.
   */
  to(target: MoveTarget): this {
    // Outside autograd, so moved parameters are new leaves that accumulate .grad.
    noGrad(() => {
      for (const [, m] of this.namedModules()) m.moveOwn(target);
    });
    return this;
  }
  private moveOwn(target: MoveTarget): void {
    for (const map of [this.params, this.bufs]) {
      for (const [n, t] of map) {
        if (!t) continue;
        const isFloat = t.dtype.startsWith('float') || t.dtype === 'bfloat16';
        const cast = t.to({ device: target.device, dtype: isFloat ? target.dtype : undefined });
        const laidOut =
          target.memoryFormat && (t.ndim === 4 || t.ndim === 5) ? cast.contiguous(target.memoryFormat) : cast;
        if (laidOut !== cast) cast.dispose();
        const moved = laidOut.keep();
        if (map === this.params) moved.requiresGrad_(t.requiresGrad);
        t.dispose();
        map.set(n, moved);
      }
    }
  }
  /** Frees every parameter and buffer. */
  dispose(): void {
    for (const [, t] of [...this.namedParameters(), ...this.namedBuffers()]) t.dispose();
  }
}
