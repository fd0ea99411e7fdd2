/**
 * State kept beside the trainer's in a checkpoint: the stages around a run (normaliser,
 * imputation statistics, counters, dead-letter file length, the label join...). `save`
 * runs at a step boundary and returns plain JSON; `restore` gets it back before the run
 * starts. Its own file: the stages that keep state (ingestion, delayed labels) and the
 * checkpoints that hold it import it without importing each other.
 *
 * @example
 * const state: CheckpointedState = { save: () => ({ counters: { ...counters } }), restore: (s) => Object.assign(counters, s.counters) };
 */
export interface CheckpointedState {
  save(): Readonly<Record<string, unknown>>;
  restore(sections: Readonly<Record<string, unknown>>): void;
}
