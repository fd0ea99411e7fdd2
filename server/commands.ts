import { StreamgradError } from '../core/errors.ts';
import type { TrainingRun } from '../pipeline/run.ts';
import { RunMirror, type ServedRun } from './run-mirror.ts';
import { AppliedOnce, commandKey } from './applied-once.ts';
import { errorMessage } from './messages.ts';
import type { AckMessage, CommandMessage, ErrorMessage, Outcome, VersionCommandMessage } from './protocol.ts';

export type { Outcome } from './protocol.ts';

/**
 * The control channel's commands, applied at most once per (run, id) (MQTT QoS 1,
 * RELIABILITY.md row 37): the outcome of every applied command is remembered in a
 * bounded LRU shared by all connections (`AppliedOnce`), so a client that resends an id
 * (after a lost ack, or from a new connection) gets the same ack again with
 * `duplicate: true` and the run is not touched twice. A resend that arrives while the
 * first is still running waits for it. Refused commands are not remembered: fixing the
 * cause and resending works. A cluster gateway's runs are applied by their partitions'
 * owners, which remember what they applied too: an id first sent through another gateway
 * comes back from the owner marked `duplicate`, and is acked so. This memory is the
 * server's, in memory; a run whose checkpoints keep the ids applied to it has its own
 * (`AddRunOptions.commands`), which outlives a restart with `--resume`: a run of this thread
 * is answered from it instead, and a run on another thread sends a repeat back marked
 * `duplicate`, acked so.
 */
export class CommandLog {
  private readonly applied: AppliedOnce;

  constructor(
    private readonly runs: ReadonlyMap<string, ServedRun>,
    capacity = 10_000,
    private readonly log: (line: string) => void = () => undefined,
    /** Applies `promote` / `rollback` (the server's `PredictionService`); without it they are refused. */
    private readonly versions: (command: VersionCommandMessage) => Outcome = () => ({ ok: false, code: 'SG_ERR_STATE', message: 'this server keeps no model versions' }),
    /** Per run of this thread: its own memory of the ids applied to it, which its checkpoints keep (`AddRunOptions.commands`). */
    private readonly runCommands: ReadonlyMap<string, AppliedOnce> = new Map(),
  ) {
    this.applied = new AppliedOnce(capacity);
  }

  /** Applies `command` unless it was applied before; the caller has checked the access. */
  async handle(command: CommandMessage | VersionCommandMessage): Promise<AckMessage | ErrorMessage> {
    if (command.type === 'promote' || command.type === 'rollback') {
      // `promote` / `rollback`, at most once per (model, id) like every command
      return this.answer(command, `model ${command.model}`, `versions\u0000${command.model}\u0000${command.id}`, this.applied, async () => this.versions(command));
    }
    const run = this.runs.get(command.run);
    if (run === undefined) return errorMessage('SG_ERR_UNKNOWN_RUN', 'no run of that name (run) on this server', command.id, 'run');
    // a run on another thread applies the command there, at its next step boundary (through
    // its own memory, if it has one: `RunPublisher`); one of this thread that has its own
    // memory is answered from it instead of this server's
    const memory = run instanceof RunMirror ? this.applied : (this.runCommands.get(command.run) ?? this.applied);
    return this.answer(command, `run ${run.id}`, commandKey(command.run, command.id), memory, () => (run instanceof RunMirror ? run.control(command) : applyCommand(run, command)));
  }

  private async answer(command: CommandMessage | VersionCommandMessage, what: string, key: string, memory: AppliedOnce, apply: () => Promise<Outcome>): Promise<AckMessage | ErrorMessage> {
    let first = false;
    const { outcome, duplicate } = await memory.apply(key, () => {
      first = true;
      return apply();
    });
    if (first) this.log(`command ${command.type} on ${what}: ${outcome.ok ? (duplicate ? 'applied before, by its owner (a duplicate)' : 'applied') : `refused (${outcome.code})`}`);
    if (!outcome.ok) return errorMessage(outcome.code, outcome.message, command.id);
    return { type: 'ack', id: command.id, command: command.type, duplicate, result: outcome.result };
  }
}

/** Applies one command to a run and says how it ended (never throws). */
export async function applyCommand(run: TrainingRun, command: CommandMessage): Promise<Outcome> {
  try {
    return { ok: true, result: await dispatch(run, command) };
  } catch (error) {
    if (error instanceof StreamgradError && (error.code === 'SG_ERR_STATE' || error.code === 'SG_ERR_CONFIG')) {
      return { ok: false, code: error.code, message: error.message };
    }
    return { ok: false, code: 'SG_ERR_INTERNAL', message: `${command.type} failed: ${error instanceof Error ? error.message.split('\n', 1)[0] : String(error)}` };
  }
}

function requireLive(run: TrainingRun, command: string): void {
  if (run.state === 'completed' || run.state === 'failed' || run.state === 'stopped') {
    throw new StreamgradError('SG_ERR_STATE', `run ${run.id}: ${command} is not possible, the run has ${run.state}`, 'state');
  }
}

async function dispatch(run: TrainingRun, command: CommandMessage): Promise<unknown> {
  switch (command.type) {
    case 'pause':
      requireLive(run, 'pause');
      run.pause();
      return { state: run.state, step: run.trainer.counters.steps };
    case 'resume':
      requireLive(run, 'resume');
      run.resume();
      return { state: run.state, step: run.trainer.counters.steps };
    case 'step': {
      requireLive(run, 'step');
      const result = await run.step();
      return { step: result === null ? null : result.counters.steps, loss: result !== null && Number.isFinite(result.loss) ? result.loss : null };
    }
    case 'setLearningRate':
      run.setLearningRate(command.learningRate);
      return { learningRate: run.trainer.optimizer.learningRate };
    case 'reset':
      run.reset();
      return { step: run.trainer.counters.steps };
    case 'checkpoint':
      return { path: await run.checkpoint() };
  }
}
