export * from './nn/module.js';
export * from './nn/layers.js';
export * from './nn/activations.js';
export * from './nn/containers.js';
export * from './nn/attention.js';
export * as init from './nn/init.js';
