/**
 * `streamgrad`: the core library, browser-safe (no Node built-ins). Models, initialisation,
 * trainers, the RxJS operators of the training pipeline and their composition `train`,
 * kernels (JavaScript and WebAssembly), online preprocessing, and synthetic streams.
 *
 * Node-only parts live in subpaths: `streamgrad/node` (checkpoint files, resumable runs,
 * file dead letters), `streamgrad/sources` (CSV, NDJSON, stdin, MQTT, WebSocket ingest),
 * `streamgrad/server` (the live server and dashboard), `streamgrad/client` (the Node client);
 * `streamgrad/protocol` is the browser-safe wire protocol.
 *
 * @example
 * import { createModel, createTrainer, initialize, michaelisMenten, train } from 'streamgrad';
 * const model = initialize(createModel({ inputSize: 3, layers: [{ units: 8, activation: 'tanh' }, { units: 1, activation: 'linear' }] }), 'auto', 1);
 * const trainer = createTrainer({ model, loss: 'mse', optimizer: { type: 'adam', learningRate: 1e-2 } });
 * michaelisMenten({ seed: 1, limit: 2000 }).pipe(train(trainer, { batch: 16 })).subscribe((r) => console.log(r.step, r.loss));
 *
 * @packageDocumentation
 */

// Models and their parameters
export { createModel, cloneModel, checkTopology, topologyOf, parameterCount, type Model, type Layer, type LayerSpec, type Topology } from './core/model.ts';
export { DEFAULT_INIT, initialize, INIT_SCHEMES, type InitScheme } from './core/init.ts';
export { ACTIVATIONS, LEAKY_RELU_SLOPE, isActivation, type Activation } from './core/activations.ts';
export { LOSSES, type Loss } from './core/losses.ts';
export { OPTIMIZERS, setLearningRate, type OptimizerConfig, type OptimizerType } from './core/optimizers.ts';
export { modelFromJSON, modelToJSON, MODEL_FORMAT, type ModelDocument } from './pipeline/model-file.ts';
export { Rng, type RngState } from './core/rng.ts';

// Training: the trainer (all state), the composed pipeline and a controllable run
export { createTrainer, type Trainer, type TrainerConfig, type TrainerCounters } from './core/trainer.ts';
export { train, type StepResult, type TrainOptions } from './pipeline/train.ts';
export { TrainingRun, type AutoCheckpoint, type Checkpointer, type ReadyIterator, type RunEvent, type RunOptions, type RunState } from './pipeline/run.ts';
export { CUT, type Cut, withCuts } from './pipeline/cut.ts';
export { PrequentialEvaluator, type RollingMetrics } from './core/evaluation.ts';
export type { ForwardStep, GradientStep, LossStep, SkipReason, UpdatedStep } from './core/step.ts';

// The pipeline's stages, one operator each
export { validate } from './operators/validate.ts';
export { batch, type BatchConfig } from './operators/batch.ts';
export { forward } from './operators/forward.ts';
export { loss } from './operators/loss.ts';
export { prequential, type WithMetrics } from './operators/prequential.ts';
export { backward } from './operators/backward.ts';
export { update } from './operators/update.ts';
export { predict, type Prediction, type PredictOptions } from './operators/predict.ts';

// Drift: detectors over a numeric stream, the operator, and reactions of a model in training
export { DETECTOR_KINDS, type DetectorKind, type DetectorState, type DriftDetector, type DriftLevel } from './core/drift/detector.ts';
export { BINARY_DETECTORS, createDetector, type DetectorConfig } from './core/drift/detectors.ts';
export { Adwin, type AdwinOptions, type AdwinState } from './core/drift/adwin.ts';
export { PageHinkley, type PageHinkleyOptions, type PageHinkleyState } from './core/drift/page-hinkley.ts';
export { Ddm, type DdmOptions, type DdmState } from './core/drift/ddm.ts';
export { HddmA, type HddmAOptions, type HddmAState } from './core/drift/hddm-a.ts';
export { Kswin, type KswinOptions, type KswinState, type Sampler } from './core/drift/kswin.ts';
export { ksTwoSample } from './core/drift/ks-test.ts';
export { LargeErrorSignal, type LargeErrorOptions, type LargeErrorState } from './core/drift/large-error.ts';
export { detectDrift, type DriftEvent } from './operators/detect-drift.ts';
export {
  DriftAdaptation, driftSettings, DRIFT_DEFAULTS, DRIFT_SIGNALS, REACTIONS,
  type AdaptationEvent, type AdaptationState, type DriftConfig, type DriftSignal, type ReactionConfig, type ReactionKind,
} from './pipeline/drift-adaptation.ts';

// Samples, records, typed errors and dead letters
export { checkSample, type Rejection, type Sample, type SampleShape } from './core/sample.ts';
export { StreamgradError, type ErrorCode } from './core/errors.ts';
export { createIngestCounters, ingestStats, type IngestCounters, type IngestRecord, type IngestStats, type LabelStats, type Origin } from './core/record.ts';
export { deadLetter, MemoryDeadLetters, teeDeadLetters, MAX_RAW_CHARS, type DeadLetter, type DeadLetterSink } from './core/dead-letter.ts';

// Online preprocessing of named records
export { ingest, type IngestOptions } from './pipeline/ingest.ts';
export { validateRecords, type ValidateRecordsOptions } from './operators/validate-record.ts';
export { FeatureMap, MISSING_POLICIES, type FeatureMapConfig, type FeatureMapState, type MapResult, type MissingPolicy } from './core/features.ts';
export { Normalizer, type NormalizerConfig, type NormalizerState } from './core/normalizer.ts';
export { normalize } from './operators/normalize.ts';
export { denormalize } from './operators/denormalize.ts';

// Delayed labels: features now, labels later, scored on the prediction made when the features came
export { joinLabels } from './operators/join-labels.ts';
export {
  LabelJoin, absorbedRecords, createLabelJoinCounters, DEFAULT_PENDING_CAPACITY, EXPIRED_POLICIES, LABEL_COUNTER_NAMES, labelCheck, MAX_PENDING_CAPACITY,
  type ExpiredPolicy, type JoinedRecord, type LabelCheck, type LabelJoinConfig, type LabelJoinCounters, type LabelJoinState, type LabelledRecord,
} from './core/label-join.ts';
export { featurePredictor, type FeaturePredictor, type FeaturePredictorOptions, type FeatureTimePrediction } from './core/feature-time-prediction.ts';
export { mergeLabelled, tagLabels, topicMatcher, type MergeLabelledOptions } from './sources/labelled.ts';
export { delayLabels, type DelayLabelsOptions } from './sources/delayed-labels.ts';

// Kernels: plain JavaScript, WebAssembly SIMD, or the native addon (Node)
export { BACKENDS, defaultKernels, isBackendChoice, loadKernels, resolveKernels, selectKernels, type BackendChoice } from './core/backend.ts';
export type { Allocator, Kernels } from './core/kernels.ts';
export { jsKernels } from './core/kernels-js.ts';
export {
  nativeInfo, nativePhases, nativeKernels, resetNativePhases, nativeStatus, nativeSupported, setNativeIsa, setNativeParallel, type NativeInfo, type NativePhase, type NativePrecision,
} from './core/kernels-native.ts';
export { F32_TOLERANCE, loadWasmKernels, sharedMemorySupported, wasmKernels, wasmStats, wasmSupported, type WasmPrecision, type WasmStats } from './core/kernels-wasm.ts';

// Synthetic streams (seeded, browser-safe)
export { michaelisMenten, michaelisMentenSamples, type KineticsSample, type KineticsSamples, type MichaelisMentenOptions } from './sources/michaelis-menten.ts';
export { sine, sineSamples, type SineOptions, type SineSample } from './sources/sine.ts';
export { spirals, spiralsSamples, type SpiralsOptions } from './sources/spirals.ts';
export { xor, xorSamples, type XorOptions } from './sources/xor.ts';
export { blobs, blobsSamples, type BlobsOptions } from './sources/blobs.ts';
export { separable, separableSamples, type SeparableOptions } from './sources/separable.ts';
export { conceptChange, conceptChangeSamples, type ConceptChangeOptions } from './sources/concept-change.ts';
export { sea, seaSamples, SEA_THRESHOLDS, type SeaOptions } from './sources/sea.ts';
export { sineConcepts, sineConceptSamples, type SineConceptsOptions } from './sources/sine-concepts.ts';
export { hyperplane, hyperplaneSamples, type HyperplaneOptions } from './sources/hyperplane.ts';
export { kineticsDrift, kineticsDriftSamples, type KineticsDriftOptions } from './sources/kinetics-drift.ts';
export type { LabelEncoding, SampleIterator, SimulatedOptions } from './sources/generated.ts';
