export * from './optim/optimizer.js';
export * from './optim/adam.js';
export * from './optim/sgd.js';
export * from './optim/schedule.js';
export * from './optim/clip.js';
export * from './optim/grad-scaler.js';
