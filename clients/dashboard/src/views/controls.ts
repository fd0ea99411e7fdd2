import type { Outcome } from '../commands.ts';
import { formatCount, formatNumber, h, setText, show } from '../dom.ts';
import { printable } from '../wire.ts';

export type ControlName = 'pause' | 'resume' | 'step' | 'reset' | 'checkpoint' | 'setLearningRate';

export interface ControlsState {
  /** The connection may steer runs. */
  readonly control: boolean;
  readonly run: string | null;
  readonly runState: string;
  readonly learningRate: number | null;
  readonly connected: boolean;
}

const LABELS: Record<Exclude<ControlName, 'setLearningRate'>, string> = {
  pause: 'Pause', resume: 'Resume', step: 'Step', reset: 'Reset', checkpoint: 'Save checkpoint',
};

/** Learning-rate slider: log10 from 1e-6 to 1. */
const LR_MIN = -6, LR_MAX = 0;

/**
 * Steering the selected run — pause, resume, one step, learning rate, reset, checkpoint —
 * shown only to a connection with control access. Each control shows the outcome of its
 * last command: the server's ack (what changed) or its error, verbatim but as text.
 */
export class Controls {
  readonly element: HTMLElement;
  private readonly buttons = new Map<ControlName, HTMLButtonElement>();
  private readonly status = new Map<ControlName, HTMLElement>();
  private readonly slider: HTMLInputElement;
  private readonly lrValue: HTMLElement;
  private readonly body: HTMLElement;
  private readonly readOnly: HTMLElement;
  private sliding = false;

  constructor(send: (name: ControlName, args: { learningRate?: number }) => void) {
    const rows: HTMLElement[] = [];
    for (const name of Object.keys(LABELS) as (keyof typeof LABELS)[]) {
      const button = h('button', { class: 'control', 'data-control': name }, LABELS[name]);
      button.addEventListener('click', () => send(name, {}));
      const status = h('span', { class: 'control-status', 'data-status': name });
      this.buttons.set(name, button);
      this.status.set(name, status);
      rows.push(h('div', { class: 'control-row' }, button, status));
    }
    this.slider = h('input', { class: 'lr-slider', 'data-control': 'setLearningRate', title: 'learning rate (log scale); applied on release' });
    this.slider.type = 'range';
    this.slider.min = String(LR_MIN);
    this.slider.max = String(LR_MAX);
    this.slider.step = '0.05';
    this.lrValue = h('output', { class: 'lr-value' });
    this.slider.addEventListener('input', () => {
      this.sliding = true;
      setText(this.lrValue, formatNumber(10 ** Number(this.slider.value)));
    });
    this.slider.addEventListener('change', () => {
      this.sliding = false;
      const learningRate = Number((10 ** Number(this.slider.value)).toPrecision(3));
      if (Number.isFinite(learningRate) && learningRate > 0) send('setLearningRate', { learningRate });
    });
    const lrStatus = h('span', { class: 'control-status', 'data-status': 'setLearningRate' });
    this.status.set('setLearningRate', lrStatus);
    this.body = h('div', { class: 'controls-body' },
      ...rows,
      h('label', { class: 'lr-row' }, h('span', {}, 'learning rate'), this.slider, this.lrValue),
      h('div', { class: 'control-row' }, lrStatus));
    this.readOnly = h('p', { class: 'empty' }, 'Read-only: enter the control token above to steer runs.');
    this.element = h('div', { class: 'controls' }, this.body, this.readOnly);
  }

  draw(state: ControlsState): void {
    show(this.body, state.control);
    show(this.readOnly, !state.control);
    if (!state.control) return;
    const usable = state.connected && state.run !== null;
    const live = state.runState === 'running' || state.runState === 'paused' || state.runState === 'idle';
    this.enable('pause', usable && live && state.runState !== 'paused');
    this.enable('resume', usable && state.runState === 'paused');
    this.enable('step', usable && state.runState === 'paused');
    this.enable('reset', usable);
    this.enable('checkpoint', usable);
    this.slider.disabled = !usable;
    if (!this.sliding && state.learningRate !== null && state.learningRate > 0) {
      const v = Math.max(LR_MIN, Math.min(LR_MAX, Math.log10(state.learningRate)));
      const text = String(Math.round(v / 0.05) * 0.05);
      if (this.slider.value !== text) this.slider.value = text;
      setText(this.lrValue, formatNumber(state.learningRate));
    }
  }

  /** A command was sent (shows "…" until its answer). */
  sent(name: ControlName): void {
    const el = this.status.get(name);
    if (el === undefined) return;
    el.className = 'control-status pending';
    setText(el, '…');
  }

  /** Shows a command's ack or error next to its control. */
  answered(name: ControlName, outcome: Outcome): void {
    const el = this.status.get(name);
    if (el === undefined) return;
    el.className = outcome.ok ? 'control-status ok' : 'control-status error';
    setText(el, outcome.ok ? `✓ ${describeAck(name, outcome.ack?.result)}${outcome.ack?.duplicate === true ? ' (already applied)' : ''}` : `✗ ${printable(outcome.error?.code ?? '')}: ${printable(outcome.error?.message ?? '', 160)}`);
  }

  private enable(name: ControlName, enabled: boolean): void {
    const button = this.buttons.get(name);
    if (button !== undefined && button.disabled === enabled) button.disabled = !enabled;
  }
}

function describeAck(name: ControlName, result: unknown): string {
  const r = (typeof result === 'object' && result !== null ? result : {}) as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  switch (name) {
    case 'pause':
    case 'resume':
      return `${typeof r.state === 'string' ? printable(r.state, 20) : 'done'} at step ${formatCount(num(r.step))}`;
    case 'step':
      return r.step === null ? 'the stream had ended' : `step ${formatCount(num(r.step))}, loss ${formatNumber(num(r.loss))}`;
    case 'reset':
      return `weights reset at step ${formatCount(num(r.step))}`;
    case 'checkpoint':
      return typeof r.path === 'string' ? `saved to ${printable(r.path, 80)}` : 'saved';
    case 'setLearningRate':
      return `learning rate ${formatNumber(num(r.learningRate))}`;
  }
}
