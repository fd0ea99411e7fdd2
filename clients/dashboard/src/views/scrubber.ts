import { formatCount, h, setText } from '../dom.ts';

export interface ScrubberState {
  /** Steps the server holds for the run, oldest first. */
  readonly steps: readonly number[];
  /** The step shown (null: live). */
  readonly pinned: number | null;
  /** The run's current step. */
  readonly current: number;
  /** Whether the shown step's weights are loaded. */
  readonly loaded: boolean;
}

/**
 * The timeline: a slider over the snapshots the server keeps of the selected run (the
 * whole run, evenly spaced), to see how the weights looked N steps ago; "live" goes back
 * to the newest weights. Moving it calls `onPick` with a step (or null for live).
 */
export class Scrubber {
  readonly element: HTMLElement;
  private readonly slider: HTMLInputElement;
  private readonly label: HTMLElement;
  private readonly live: HTMLButtonElement;
  private steps: readonly number[] = [];
  private dragging = false;

  constructor(private readonly onPick: (step: number | null) => void, onOpen: () => void) {
    this.slider = h('input', { class: 'scrubber-range', title: 'drag to look back at earlier weights' });
    this.slider.type = 'range';
    this.slider.min = '0';
    this.slider.max = '0';
    this.slider.step = '1';
    this.slider.value = '0';
    this.label = h('div', { class: 'scrubber-label' }, 'live');
    this.live = h('button', { class: 'live-button', 'data-control': 'live' }, 'live');
    this.live.addEventListener('click', () => this.onPick(null));
    this.slider.addEventListener('pointerdown', () => {
      this.dragging = true;
      onOpen();
    });
    this.slider.addEventListener('focus', onOpen);
    window.addEventListener('pointerup', () => { this.dragging = false; });
    this.slider.addEventListener('input', () => {
      const i = Number(this.slider.value);
      const step = this.steps[i];
      if (Number.isSafeInteger(i) && step !== undefined) this.onPick(step);
    });
    this.element = h('div', { class: 'scrubber' }, h('div', { class: 'scrubber-row' }, this.slider, this.live), this.label);
  }

  draw(state: ScrubberState): void {
    this.steps = state.steps;
    const max = String(Math.max(0, state.steps.length - 1));
    if (this.slider.max !== max) this.slider.max = max;
    this.slider.disabled = state.steps.length < 2;
    if (state.pinned === null) {
      if (!this.dragging) this.slider.value = max;
      setText(this.label, state.steps.length < 2 ? 'live · no history yet' : `live · ${state.steps.length} snapshots back to step ${formatCount(state.steps[0])}`);
      this.live.disabled = true;
    } else {
      const i = state.steps.indexOf(state.pinned);
      if (i >= 0 && !this.dragging) this.slider.value = String(i);
      const ago = Math.max(0, state.current - state.pinned);
      setText(this.label, `step ${formatCount(state.pinned)} · ${formatCount(ago)} steps ago${state.loaded ? '' : ' · loading…'}`);
      this.live.disabled = false;
    }
  }
}
