// Sequential and ModuleList: children named "0", "1", … as in PyTorch's state dicts.
import { type Tensor } from '../tensor.js';
import { Module } from './module.js';
import { type Layer } from './layers.js';

export class ModuleList<M extends Module = Module> extends Module {
  private readonly items: M[] = [];
  constructor(modules: M[] = []) {
    super();
    for (const m of modules) this.append(m);
  }
  append(m: M): this {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
    return this;
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    const m = this.items[i < 0 ? i + this.items.length : i];
    if (!m) throw new Error(`ModuleList: index ${i} out of range (length ${this.items.length})`);
    return m;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}

/**
 * Applies its layers in order. Intermediate results are disposed as it goes, so a forward pass
 * outside tidy() does not leak; an Identity layer's pass-through is kept.
 */
export class Sequential extends ModuleList<Module & Layer> implements Layer {
  constructor(...layers: (Module & Layer)[]) {
    super(layers);
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const layer of this) {
      const next = layer.forward(h);
      if (h !== x && next !== h) h.dispose();
      h = next;
    }
    return h;
  }
}
