export * from './hf';
export { exportCheckpointToHf, importHfToCheckpoint } from './convert';
