/**
 * `streamgrad/sources` (Node): streams of records from files, standard input, MQTT and
 * WebSocket ingest, with bounded queues for live sources. Records go through `ingest`
 * (from `streamgrad`) to become samples. The synthetic streams are in `streamgrad` itself.
 *
 * @example
 * import { FeatureMap, ingest, train } from 'streamgrad';
 * import { csvFile } from 'streamgrad/sources';
 * const features = new FeatureMap({ features: ['temp_max', 'wind'], targets: ['weather'], classes: ['rain', 'sun'] });
 * csvFile('weather.csv').pipe(ingest({ trainer, features }), train(trainer)).subscribe();
 *
 * @packageDocumentation
 */
export { csvFile, csvRecords, discoverClasses, type CsvOptions } from './csv.ts';
export { ndjsonFile, ndjsonFileRecords, ndjsonRecords, type NdjsonOptions } from './ndjson.ts';
export { stdin, stdinRecords, type StdinOptions } from './stdin.ts';
export { replay, replayRecords, type ReplayOptions } from './replay.ts';
export { paced, type PacedOptions } from './paced.ts';
export { mqtt, mqttRecords, type MqttSource, type MqttSourceOptions } from './mqtt.ts';
export { WebSocketIngest, type IngestEndpoint, type IngestHandshake, type WebSocketIngestOptions } from './websocket-ingest.ts';
export { BoundedQueue, OVERFLOW_POLICIES, type BoundedQueueOptions, type OverflowPolicy, type QueueStats } from './bounded-queue.ts';
