/**
 * The typed Node client of a streamgrad server (protocol v1): `connect(url, options)`.
 * Browser pages use the same protocol types (`server/protocol.ts`) and frame decoder
 * (`server/snapshot-frame.ts`).
 */
export { connect, originOf, type ClientStats, type Command, type ConnectionState, type ConnectOptions, type PredictOptions, type StreamgradClient, type SubscribeOptions } from './client.ts';
export { predictBulk, predictHttp, PredictError, type BulkAnswer, type HttpPredictOptions, type PredictErrorCode } from './predict-http.ts';
export type { BulkLineFailure, PredictionAnswer } from './server-message.ts';
export { Backoff, type BackoffOptions } from './backoff.ts';
export { CommandError, ConnectionError, type CommandErrorCode, type ConnectionErrorCode } from './errors.ts';
export type { AckMessage, Channel, ErrorMessage, EventMessage, HelloMessage, MetricsMessage, ModelInfo, PredictionFailure, PredictionMessage, PredictionMeta, PredictionResult, RunInfo } from '../../server/protocol.ts';
export type { DecodedFrame } from '../../server/snapshot-frame.ts';
