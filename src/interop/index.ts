export * from './canonical';
export * from './hf';
