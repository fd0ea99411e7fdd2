import { formatCount, formatNumber, h, setText } from '../dom.ts';
import type { RunStore, Store } from '../store.ts';
import { labelLine } from './label-line.ts';

interface Row {
  readonly root: HTMLElement;
  readonly state: HTMLElement;
  readonly stats: HTMLElement;
  /** Delayed labels: what the run's join counted (hidden for a run without). */
  readonly labels: HTMLElement;
  readonly visible: HTMLInputElement;
  version: number;
}

/** Every counter of the join, one per line (the line's tooltip). */
function labelDetail(c: Readonly<Record<string, number>>): string {
  return Object.entries(c).map(([key, value]) => `${key}: ${formatCount(value)}`).join('\n');
}

/**
 * The runs on the server: a colour (its curves in the overlay charts), a checkbox to show
 * or hide its curves, its topology, state, step, rolling loss and speed. Clicking a run
 * selects it for the detail views. All text goes in through textContent.
 */
export class RunList {
  readonly element: HTMLElement;
  private readonly list: HTMLElement;
  private rows = new Map<string, Row>();
  private listVersion = -1;
  private selected = '';

  constructor(private readonly store: Store, private readonly onSelect: (id: string) => void, private readonly onVisibility: () => void) {
    this.list = h('ul', { class: 'run-list' });
    this.element = h('div', {}, this.list);
  }

  draw(selected: string): void {
    if (this.store.listVersion !== this.listVersion || selected !== this.selected) this.rebuild(selected);
    for (const [id, row] of this.rows) {
      const run = this.store.runs.get(id);
      if (run === undefined || run.version === row.version) continue;
      row.version = run.version;
      const state = run.diverged ? 'diverged' : run.info.state;
      setText(row.state, state);
      row.state.className = `badge state-${state}`;
      const loss = run.metrics?.metrics.loss;
      const rate = run.metrics?.samplesPerSecond;
      setText(row.stats, `step ${formatCount(run.info.step)} · ${run.info.loss} ${formatNumber(loss)} · ${rate === null || rate === undefined ? '–' : `${formatCount(rate)}/s`}`);
      const labels = run.metrics?.labels;
      row.labels.hidden = labels === undefined;
      if (labels !== undefined) {
        setText(row.labels, labelLine(labels));
        row.labels.title = labelDetail(labels);
      }
    }
  }

  private rebuild(selected: string): void {
    this.listVersion = this.store.listVersion;
    this.selected = selected;
    this.rows.clear();
    this.list.replaceChildren();
    if (this.store.runs.size === 0) {
      this.list.append(h('li', { class: 'empty' }, 'no runs on this server yet'));
      return;
    }
    for (const run of this.store.runs.values()) this.list.append(this.row(run, run.info.id === selected));
  }

  private row(run: RunStore, selected: boolean): HTMLElement {
    const visible = h('input', { class: 'run-visible', title: 'show its curves' });
    visible.type = 'checkbox';
    visible.checked = run.visible;
    visible.addEventListener('change', () => {
      run.visible = visible.checked;
      this.onVisibility();
    });
    const swatch = h('span', { class: 'swatch' });
    swatch.style.background = run.color;
    const name = h('button', { class: 'run-name', 'data-run': run.info.id }, run.info.id);
    name.addEventListener('click', () => this.onSelect(run.info.id));
    const state = h('span', { class: 'badge' });
    const { topology } = run.info;
    const shape = [String(topology.inputSize), ...topology.layers.map((l) => `${l.units} ${l.activation}`)].join(' → ');
    const stats = h('div', { class: 'run-stats' });
    const labels = h('div', { class: 'run-labels', 'data-run': run.info.id });
    labels.hidden = true;
    const root = h('li', { class: selected ? 'run selected' : 'run' },
      h('div', { class: 'run-head' }, visible, swatch, name, state),
      h('div', { class: 'run-shape' }, `${shape} · ${formatCount(run.info.parameters)} params · ${run.info.optimizer.type}`),
      stats, labels);
    this.rows.set(run.info.id, { root, state, stats, labels, visible, version: -1 });
    return root;
  }
}
