/**
 * The one way this page makes elements: text goes in through `textContent` only, never
 * as markup, so nothing that comes over the wire can become HTML (RELIABILITY.md row 40).
 */
export type Child = Node | string | null | undefined | false;

export interface Props {
  readonly class?: string;
  readonly title?: string;
  readonly [attribute: `data-${string}`]: string;
}

/** `h('div', {class: 'x'}, 'text', child)`: an element with attributes and children (strings become text nodes). */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined) continue;
    if (key === 'class') el.className = value;
    else el.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return el;
}

/** Sets an element's text when it changed (no layout work otherwise). */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

/** Shows or hides an element (the `hidden` attribute; the stylesheet keeps it hidden). */
export function show(el: HTMLElement, visible: boolean): void {
  if (el.hidden === visible) el.hidden = !visible;
}

/**
 * Sizes a canvas's backing store to its CSS box times the device pixel ratio; returns
 * whether it changed (the caller must redraw then).
 */
export function fitCanvas(canvas: HTMLCanvasElement, cssWidth: number, cssHeight: number): boolean {
  const ratio = Math.min(2, window.devicePixelRatio || 1);
  const width = Math.max(1, Math.round(cssWidth * ratio));
  const height = Math.max(1, Math.round(cssHeight * ratio));
  if (canvas.width === width && canvas.height === height) return false;
  canvas.width = width;
  canvas.height = height;
  canvas.style.width = `${cssWidth}px`;
  canvas.style.height = `${cssHeight}px`;
  return true;
}

// the number formats live apart from the DOM (pure: views without a page use them too)
export { formatCount, formatNumber } from './format.ts';
