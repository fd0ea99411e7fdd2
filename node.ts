/**
 * `streamgrad/node`: the Node-only parts of the core (they use `node:crypto` and `node:fs`):
 * checkpoint files with checksums, a directory of rotating checkpoints, exact resume of a
 * `TrainingRun`, dead letters appended to an NDJSON file, exports of a model with its
 * preprocessing to ONNX and TensorFlow.js (`exportModel`). The experiment runtime
 * (`runExperiment`: a config file's sources, models, checkpoints and server, from code) is
 * `streamgrad/runtime`.
 *
 * @example
 * import { CheckpointStore, encodeRunCheckpoint } from 'streamgrad/node';
 * const store = new CheckpointStore('checkpoints', { keep: 3 });
 * await store.init();
 * await store.save(encodeRunCheckpoint(run), run.trainer.counters.steps);
 *
 * @packageDocumentation
 */
export {
  CHECKPOINT_FORMAT, decodeCheckpoint, encodeCheckpoint, modelFromCheckpoint, restoreCheckpoint,
  type Checkpoint, type CheckpointContent, type CheckpointHeader,
} from './pipeline/checkpoint.ts';
export { CheckpointStore, type CheckpointFs, type CheckpointStoreOptions, type LoadedCheckpoint } from './pipeline/checkpoint-store.ts';
export { encodeRunCheckpoint, restoreRun, type ResumePoint, type RunCheckpointExtras } from './pipeline/run-checkpoint.ts';
export { FileDeadLetters, resumeDeadLetterFile, type FileDeadLettersOptions } from './pipeline/dead-letter-file.ts';

// The model artifact: a model with the preprocessing it was trained with, and predictions through it
export {
  artifactFromCheckpoint, artifactFromJSON, artifactToJSON, continuePreprocessing, preprocessingFromJSON, preprocessingOf, preprocessingToJSON,
  NO_PREPROCESSING, PREPROCESSING_VERSION, type ModelArtifact, type Preprocessing,
} from './pipeline/model-artifact.ts';
export { type BatchPredictor, createBatchPredictor, createPredictor, predictRecord, type Predictor, type PredictorOptions, type RecordPrediction, type RecordResult } from './pipeline/predict-record.ts';

// Export to other runtimes: ONNX (with the preprocessing as nodes) and TensorFlow.js layers format
export { EXPORT_FORMATS, exportModel, type ExportFormat, type ExportModelOptions, type ExportResult } from './pipeline/export-file.ts';
export {
  encodeOnnx, exportOnnx, NO_CLASS, onnxGraph, ONNX_DTYPES, ONNX_OPSET,
  type OnnxDtype, type OnnxExportOptions, type OnnxGraph, type OnnxInitializer, type OnnxNode, type OnnxValue,
} from './pipeline/export-onnx.ts';
export { exportTfjs, tfjsLayers, type TfjsExport, type TfjsExportOptions, type TfjsLayer } from './pipeline/export-tfjs.ts';
export { exportPlans, type ExportPlan } from './pipeline/export-summary.ts';
