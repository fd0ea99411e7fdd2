import { createWriteStream, type WriteStream } from 'node:fs';
import { samplePredictions, type PredictionLabels } from '../pipeline/sample-predictions.ts';
import type { ScoredStep } from '../pipeline/train.ts';
import type { Trainer } from '../core/trainer.ts';
import { ConfigError, OutputError, oneLine } from './errors.ts';

/**
 * `--predictions FILE|-` (train, run; `evaluation.predictions` in a config): one NDJSON
 * line per sample, written as training goes (`SamplePrediction`: model, sample, step,
 * line or message id, the prediction made before learning from it, the target, the loss;
 * class names and probabilities for classifiers).
 *
 * Memory stays bounded: when the stream's buffer is full (a slow disk, a pipe nobody
 * reads), `backpressure` hands the runs a promise and they wait for it before pulling
 * the next record. `close` flushes and closes the file (standard output is drained, not
 * closed) and reports the first write error, if any.
 *
 * @example
 * const predictions = await PredictionsFile.open('preds.ndjson', '--predictions');
 * new TrainingRun({ ..., ...predictions.hooks(trainer, { model: 'train', classes }) });
 * await run.start(); await predictions.close();
 */
export class PredictionsFile {
  /** Lines written (samples), for the summary. */
  lines = 0;
  private waiting: Promise<void> | null = null;
  private failure: unknown = null;

  private constructor(readonly shown: string, private readonly stream: NodeJS.WritableStream, private readonly owned: boolean) {
    stream.on('error', (error: unknown) => {
      this.failure ??= error;
    });
  }

  /**
   * Opens `path` (`-`: standard output) for writing, or for appending with `append` (a
   * resumed run goes on after what the file holds). A file that cannot be opened is a
   * usage error naming `option`; `shown` is how lines name it.
   */
  static async open(path: string, option: string, append = false, shown = path): Promise<PredictionsFile> {
    if (path === '-') return new PredictionsFile('standard output', process.stdout, false);
    const stream: WriteStream = createWriteStream(path, { flags: append ? 'a' : 'w' });
    try {
      await new Promise<void>((resolve, reject) => {
        stream.once('open', () => resolve());
        stream.once('error', reject);
      });
    } catch (error) {
      throw new ConfigError(`${option} ${shown}: cannot write: ${oneLine(error)}`, { cause: error });
    }
    return new PredictionsFile(shown, stream, true);
  }

  /** A run's hooks: `onStep` writes each step's samples, `backpressure` holds the run while the buffer is full. */
  hooks(trainer: Trainer, labels: PredictionLabels): { onStep: (step: ScoredStep) => void; backpressure: () => Promise<void> | undefined } {
    return {
      onStep: (step) => {
        if (this.failure !== null) return;
        let text = '';
        for (const p of samplePredictions(step, trainer, labels)) text += `${JSON.stringify(p)}\n`;
        this.lines += step.size;
        if (!this.stream.write(text) && this.waiting === null) {
          this.waiting = new Promise<void>((resolve) => {
            const done = () => {
              this.stream.off('drain', done);
              this.stream.off('error', done);
              this.stream.off('close', done);
              this.waiting = null;
              resolve();
            };
            this.stream.on('drain', done);
            this.stream.on('error', done);
            this.stream.on('close', done);
          });
        }
      },
      backpressure: () => this.waiting ?? undefined,
    };
  }

  /** Flushes and closes (a file) or drains (standard output); throws an `OutputError` (SG_ERR_OUTPUT; the CLI exits 1) for a failed write. */
  async close(): Promise<void> {
    if (this.owned) {
      await new Promise<void>((resolve) => {
        this.stream.once('close', () => resolve());
        this.stream.end();
      });
    } else if (this.waiting !== null) {
      await this.waiting;
    }
    if (this.failure !== null) throw new OutputError(`predictions ${this.shown}: write failed: ${oneLine(this.failure)}`, { cause: this.failure });
  }
}
