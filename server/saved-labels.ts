import { topologyOf } from '../core/model.ts';
import type { LabelsSnapshot } from './model-versions.ts';
import { labelsFromJSON, labelsToJSON } from './version-labels.ts';

/** The checkpoint section that holds a run's version labels. */
export const VERSIONS_SECTION = 'versions';

/**
 * The version labels of the runs a process trains, between its server and its checkpoints,
 * so that `stable` (and every label `promote` set) answers after a resume exactly as before:
 * the same version number, meta and weights (the promoted version's own, which are seldom
 * the checkpoint's). The server thread tells `update` after each `promote` / `rollback`
 * (`ServeOptions.onLabels`); each checkpoint keeps the newest in its `versions` section
 * (`section(run).save()`); on a resume, `resume` takes the section back and `restoreFor`
 * gives it to the server (`addRun(run, { labels })`) before the run's first version.
 *
 * A label set just before a kill -9 is saved by the checkpoint that the change asks for
 * (`startServing` checkpoints the run at once when it has checkpoints).
 *
 * @example
 * const labels = new SavedLabels();
 * labels.resume('train', checkpoint?.header.sections);          // on --resume
 * const state = labels.section('train');                         // into the checkpoint's state
 * const server = await serveInThread({ onLabels: (m, l) => labels.update(m, l) });
 * server.addRun(run, { labels: labels.restoreFor(run) });
 */
export class SavedLabels {
  /** Per run: the labels as the server last told them. */
  private readonly current = new Map<string, LabelsSnapshot>();
  /** Per run: a resumed checkpoint's section, until the server has the run (read against its topology then). */
  private readonly resumed = new Map<string, unknown>();

  /** Takes a resumed checkpoint's `versions` section for `run` (nothing when it has none). */
  resume(run: string, sections: Readonly<Record<string, unknown>> | null | undefined): void {
    const section = sections?.[VERSIONS_SECTION];
    if (section != null) this.resumed.set(run, section);
  }

  /**
   * The labels `run` had when its checkpoint was written, read against its model
   * (`SG_ERR_CHECKPOINT` when they do not fit it); undefined without any.
   */
  restoreFor(run: { readonly id: string; readonly trainer: { readonly model: Parameters<typeof topologyOf>[0] } }): LabelsSnapshot | undefined {
    const section = this.resumed.get(run.id);
    if (section === undefined) return undefined;
    const labels = labelsFromJSON(section, topologyOf(run.trainer.model), `sections.${VERSIONS_SECTION}`);
    if (!this.current.has(run.id)) this.current.set(run.id, labels);
    return labels;
  }

  /** The server applied a `promote` or `rollback`: the labels as they stand now. */
  update(run: string, labels: LabelsSnapshot): void {
    this.current.set(run, labels);
  }

  /** The labels of `run` as last told (or resumed); undefined without any. */
  get(run: string): LabelsSnapshot | undefined {
    return this.current.get(run);
  }

  /** The `versions` section of `run`'s checkpoints (empty while it has no labels), and how a resume takes it back. */
  section(run: string): { save(): Readonly<Record<string, unknown>>; restore(sections: Readonly<Record<string, unknown>>): void } {
    return {
      save: () => {
        const labels = this.current.get(run);
        if (labels !== undefined) return { [VERSIONS_SECTION]: labelsToJSON(labels) };
        // resumed, and the server does not have the run yet: keep the section as it came
        const section = this.resumed.get(run);
        return section === undefined ? {} : { [VERSIONS_SECTION]: section };
      },
      restore: (sections) => this.resume(run, sections),
    };
  }
}
