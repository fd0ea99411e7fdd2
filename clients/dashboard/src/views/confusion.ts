import { formatCount, h, setText, show } from '../dom.ts';
import type { RowRing } from '../ring.ts';
import { confusionCounts, isClassifier, MAX_CLASSES } from './confusion-counts.ts';

/**
 * A live confusion matrix for classifiers, beside prediction vs target (as tfjs-vis shows
 * one): rows are the true classes, columns the predicted ones, over the recent samples the
 * page holds, each sample scored before the model learned from it. The diagonal is right;
 * a cell's shade is its share of its row.
 */
export class ConfusionView {
  readonly element: HTMLElement;
  private readonly table: HTMLTableElement;
  private readonly caption: HTMLElement;

  constructor() {
    this.table = h('table', { class: 'confusion-table' });
    this.caption = h('div', { class: 'note' });
    this.element = h('div', { class: 'confusion' }, h('div', { class: 'panel-title' }, 'confusion matrix (recent samples)'), this.table, this.caption);
    this.element.hidden = true;
  }

  draw(ring: Pick<RowRing, 'length' | 'get'> | null, outputs: number, loss: string): void {
    const applies = ring !== null && isClassifier(loss);
    show(this.element, applies);
    if (!applies || ring === null) return;
    const { k, counts, rows } = confusionCounts(ring, outputs, loss);
    const shown = Math.min(k, MAX_CLASSES);
    const head = h('tr', {}, h('th', { class: 'corner' }, 'true ↓ / predicted →'), ...Array.from({ length: shown }, (_, p) => h('th', {}, String(p))));
    const body = Array.from({ length: shown }, (_, t) => {
      let total = 0;
      for (let p = 0; p < k; p++) total += counts[t * k + p];
      return h('tr', {}, h('th', {}, String(t)), ...Array.from({ length: shown }, (_, p) => {
        const n = counts[t * k + p];
        const share = total === 0 ? 0 : n / total;
        // shade in tenths (the page's CSP allows no inline styles: classes only)
        const cell = h('td', { class: `cm ${t === p ? 'cm-right' : 'cm-wrong'} cm-${Math.round(share * 10)}`, 'data-true': String(t), 'data-predicted': String(p) }, formatCount(n));
        return cell;
      }));
    });
    this.table.replaceChildren(h('thead', {}, head), h('tbody', {}, ...body));
    let right = 0;
    for (let c = 0; c < k; c++) right += counts[c * k + c];
    this.element.dataset.rows = String(rows);
    setText(this.caption, rows === 0 ? 'no samples yet' : `${formatCount(right)} of ${formatCount(rows)} right (${((100 * right) / rows).toFixed(1)} %)${k > shown ? ` · first ${shown} of ${k} classes` : ''}`);
  }
}
