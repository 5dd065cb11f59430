export * from './types';
export * from './errors';
export * from './safetensors';
export * from './manifest';
export * from './checkpoint';
export * from './sharded';
