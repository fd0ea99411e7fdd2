/**
 * `streamgrad/server` (Node): the live server. One HTTP port serves the dashboard,
 * `GET /healthz`, `GET /metrics` (Prometheus) and the protocol v1 WebSocket at `/ws`
 * (see PROTOCOL.md) that broadcasts the `TrainingRun`s you add and takes control commands,
 * and `POST /predict`, which answers predictions from versions of those runs' weights and
 * of saved models (`server.addModel`).
 *
 * @example
 * import { serve } from 'streamgrad/server';
 * const server = await serve({ port: 0 });
 * server.addRun(run);                // a TrainingRun from 'streamgrad'
 * console.log(server.url);
 *
 * @packageDocumentation
 */
export { serve, type AddRunOptions, type ServerStats, type StreamgradServer } from './server.ts';
export { DEFAULT_STATIC_DIR, DEFAULTS, MAX_PREDICT_BODY_BYTES, type ServeOptions } from './options.ts';
export { PredictionService, type PredictProblem, type SavedModelInfo, type VersionRequest } from './prediction-service.ts';
export { DEFAULT_KEEP_VERSIONS, type LabelsSnapshot, ModelVersion, ModelVersions, SAVED_LABEL_DEPTH, type SavedVersion, STABLE, type VersionInfo, type VersionListing } from './model-versions.ts';
export { labelsFromJSON, labelsToJSON, VERSION_LABELS_FORMAT, type VersionLabelsDocument } from './version-labels.ts';
export { LabelsFileWriter, labelsFileOf, readLabelsFile } from './labels-file.ts';
export { SavedLabels, VERSIONS_SECTION } from './saved-labels.ts';
