// Entry point of the WebAssembly kernels (built by assembly/build.mjs).
export * from './f64';
export * from './f32';
export * from './net';
