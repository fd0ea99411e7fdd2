import 'uplot/dist/uPlot.min.css';
import './style.css';
import type uPlot from 'uplot';
import { loadKernels } from '../../../core/backend.ts';
import { wasmSupported } from '../../../core/kernels-wasm.ts';
import type { HelloMessage, HistoryResult } from '../../../server/protocol.ts';
import type { DecodedFrame } from '../../../server/snapshot-frame.ts';
import { RateLimit } from '../../../server/limits.ts';
import { type Outcome, Requests } from './commands.ts';
import { formatCount, formatNumber, h, setText, show } from './dom.ts';
import { formatHash, type MetricChoice, METRICS, parseHash, type ViewConfig } from './hash.ts';
import { DashboardSocket, socketUrl, type SocketState } from './socket.ts';
import { COL, type RunStore, Store } from './store.ts';
import { LocalModel } from './engine/local-model.ts';
import { STALE_COLOR } from './palette.ts';
import type { ChartMark } from './views/curve-chart.ts';
import { alignSeries, finiteOrNull, positiveOrNull } from './views/align.ts';
import { type ControlName, Controls } from './views/controls.ts';
import { CurveChart } from './views/curve-chart.ts';
import { DecisionSurface, type Evaluation } from './views/decision-surface.ts';
import { WeightHeatmaps } from './views/heatmap.ts';
import { DistributionCharts } from './views/histogram.ts';
import { NetworkGraph } from './views/network-graph.ts';
import { PredictionView } from './views/prediction.ts';
import { RunList } from './views/run-list.ts';
import { Scrubber } from './views/scrubber.ts';
import { parseHistoryResult, printable, type WireMessage } from './wire.ts';

/**
 * The live dashboard: one WebSocket (socket.ts) writes everything it hears into the store
 * (fixed-size buffers), and one requestAnimationFrame loop draws what changed since the
 * last frame — however many messages arrived in between, each view draws at most once per
 * frame and only when its data changed.
 */

const TOKEN_KEY = 'streamgrad.token';
const RATE_HZ = 10;
/** Bytes of past snapshots kept in the page for the scrubber. */
const HISTORY_CACHE_BYTES = 32 << 20;
/** Bytes one history answer may carry (the server's default per-client cap). */
const HISTORY_ANSWER_BYTES = 1 << 20;
const INDEX_REFRESH_MS = 5000;

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page lacks #${id}`);
  return el as T;
};

/**
 * The kernels of the what-if views (the fitted curve or surface): WebAssembly SIMD where the
 * browser has it, else plain JavaScript (`auto`, which also falls back when compiling fails).
 * Compiled asynchronously, as a page's main thread should, before anything is drawn; the
 * page's CSP allows the compilation with 'wasm-unsafe-eval'.
 */
const kernels = await loadKernels('auto');

const store = new Store();
let config: ViewConfig = parseHash(location.hash);
let access: HelloMessage['access'] = 'read-only';
let experiment: HelloMessage['experiment'] = undefined;
let connection: SocketState = 'connecting';
let connectionDetail = '';
let serverErrors = 0;
/** What changed since the last animation frame. */
let headerDirty = true;
let detailDirty = true;

// ---------------------------------------------------------------- views
const runList = new RunList(store, (id) => select(id), () => { detailDirty = true; });
$('runs').append(runList.element);
const lossChart = new CurveChart({ title: '', xLabel: 'step', yLabel: 'loss', height: 260, log: config.log, readout: true });
$('loss-chart').append(lossChart.element);
const metricChart = new CurveChart({ title: '', xLabel: 'step', yLabel: 'mae', height: 260, readout: true });
$('metric-chart').append(metricChart.element);
const network = new NetworkGraph();
$('network').append(network.element);
const prediction = new PredictionView(new LocalModel(kernels));
$('prediction').append(prediction.element);
const surface = new DecisionSurface(kernels);
$('surface').append(surface.element);
const kernelsNote = $('kernels');
const heatmaps = new WeightHeatmaps((layer) => updateConfig({ layer }));
$('heatmaps').append(heatmaps.element);
const distributions = new DistributionCharts();
$('distributions').append(distributions.element);
const controls = new Controls((name, args) => command(name, args));
$('controls').append(controls.element);
const scrubber = new Scrubber((step) => pick(step), () => refreshIndex(true));
$('scrubber').append(scrubber.element);
const eventsList = $<HTMLOListElement>('events');

const logScale = $<HTMLInputElement>('log-scale');
const xAxis = $<HTMLSelectElement>('x-axis');
const metricSelect = $<HTMLSelectElement>('metric-select');
logScale.checked = config.log;
xAxis.value = config.x;
metricSelect.value = config.metric;
logScale.addEventListener('change', () => updateConfig({ log: logScale.checked }));
xAxis.addEventListener('change', () => updateConfig({ x: xAxis.value === 'time' ? 'time' : 'step' }));
metricSelect.addEventListener('change', () => {
  const value = metricSelect.value;
  if ((METRICS as readonly string[]).includes(value)) updateConfig({ metric: value as MetricChoice });
});
window.addEventListener('hashchange', () => {
  const before = config.run;
  config = parseHash(location.hash);
  if (config.run !== before) pinned = null;
  logScale.checked = config.log;
  xAxis.value = config.x;
  metricSelect.value = config.metric;
  detailDirty = true;
});

function updateConfig(change: Partial<ViewConfig>): void {
  config = { ...config, ...change };
  const hash = formatHash(config);
  history.replaceState(null, '', hash === '' ? location.pathname + location.search : hash);
  detailDirty = true;
}

// ---------------------------------------------------------------- token (session storage only, never the URL)
const tokenForm = $<HTMLFormElement>('token-form');
const tokenInput = $<HTMLInputElement>('token-input');
const tokenStatus = $('token-status');
const tokenForget = $<HTMLButtonElement>('token-forget');
const storedToken = (): string | null => {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
};
tokenForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = tokenInput.value;
  tokenInput.value = '';
  if (token.length === 0 || token.length > 1024) return;
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // storage unavailable: the token lasts for this connection only
  }
  authenticate(token);
});
tokenForget.addEventListener('click', () => {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // nothing stored
  }
  socket.reconnectNow(); // a fresh, read-only connection
});

function authenticate(token: string): void {
  setText(tokenStatus, 'checking…');
  requests.request({ type: 'auth', token }, (outcome) => {
    if (outcome.ok) {
      access = 'control';
    } else if (outcome.error?.code === 'SG_ERR_FORBIDDEN') {
      try {
        sessionStorage.removeItem(TOKEN_KEY);
      } catch {
        // nothing stored
      }
      setText(tokenStatus, 'token refused');
      tokenStatus.className = 'token-status error';
      return;
    }
    headerDirty = true;
  }, false);
}

// ---------------------------------------------------------------- connection (opened last, below)
function onMessage(message: WireMessage): void {
  switch (message.type) {
    case 'hello':
      socket.confirmed();
      requests.reconnected();
      access = message.access;
      experiment = message.experiment;
      gateways = gatewaysOf(message.gateways);
      prediction.setTarget(experiment?.target ?? '');
      {
        const budget = (message.limits as { commandsPerMinute?: unknown } | undefined)?.commandsPerMinute;
        if (typeof budget === 'number' && Number.isFinite(budget) && budget >= 1) historyBudget = new RateLimit(Math.max(1, Math.min(40, Math.floor(budget * 0.4))));
      }
      store.setRuns(message.runs);
      socket.send({ type: 'subscribe', run: '*', channels: ['metrics', 'events', 'snapshots', 'gradients', 'predictions'], rateHz: RATE_HZ, dtype: 'float32' });
      {
        const token = storedToken();
        if (token !== null && access !== 'control') authenticate(token);
      }
      historyIndex = null;
      refreshIndex(true);
      headerDirty = detailDirty = true;
      return;
    case 'run':
      store.upsert(message.run);
      detailDirty = true;
      return;
    case 'run-removed':
      store.remove(message.run);
      detailDirty = true;
      return;
    case 'metrics':
      store.metrics(message);
      return;
    case 'scalars':
      store.scalars(message);
      return;
    case 'predictions':
      store.predictions(message);
      return;
    case 'recent-events':
      // what happened before the page came (a reload, a late page): the store drops repeats
      for (const e of message.events) store.event(e);
      return;
    case 'event':
      store.event(message);
      if (message.event === 'reset') historyIndexStale = true;
      return;
    case 'ack':
    case 'error':
      if (!requests.answer(message) && message.type === 'error') serverErrors++;
      return;
  }
}

function onFrame(frame: DecodedFrame): void {
  if (frame.kind === 'history') {
    cacheHistoryFrame(frame);
    return;
  }
  store.frame(frame);
}

// ---------------------------------------------------------------- selection and commands
function selectedRun(): RunStore | null {
  return store.runs.get(config.run) ?? store.runs.values().next().value ?? null;
}

function select(id: string): void {
  if (id === config.run) return;
  pinned = null;
  historyIndex = null;
  updateConfig({ run: id });
  refreshIndex(true);
}

function command(name: ControlName, args: { learningRate?: number }): void {
  const run = selectedRun();
  if (run === null) return;
  controls.sent(name);
  requests.request({ type: name, run: run.info.id, ...(name === 'setLearningRate' && { learningRate: args.learningRate }) }, (outcome: Outcome) => {
    controls.answered(name, outcome);
    detailDirty = true;
  });
}

// ---------------------------------------------------------------- timeline (history)
let historyIndex: (HistoryResult & { readonly at: number }) | null = null;
let historyIndexStale = false;
let historyInflight = false;
let pinned: number | null = null;
let wanted: number | null = null;
const historyCache = new Map<string, DecodedFrame>();
let historyCacheBytes = 0;
/** The page's own pace for history requests: 40 % of the server's message budget (at most 40 a minute). */
let historyBudget = new RateLimit(40);
const cacheKey = (run: string, step: number) => `${run}\u0000${step}`;

function cacheHistoryFrame(frame: DecodedFrame): void {
  const key = cacheKey(frame.run, frame.step);
  const old = historyCache.get(key);
  if (old !== undefined) historyCacheBytes -= old.values.byteLength;
  historyCache.delete(key);
  historyCache.set(key, frame);
  historyCacheBytes += frame.values.byteLength;
  for (const [k, f] of historyCache) {
    if (historyCacheBytes <= HISTORY_CACHE_BYTES) break;
    historyCache.delete(k);
    historyCacheBytes -= f.values.byteLength;
  }
  if (pinned !== null && frame.step === pinned) detailDirty = true;
}

function refreshIndex(force: boolean): void {
  const run = selectedRun();
  if (run === null || connection !== 'open' || historyInflight) return;
  if (!force && historyIndex !== null && !historyIndexStale && performance.now() - historyIndex.at < INDEX_REFRESH_MS) return;
  if (!historyBudget.take()) return;
  historyInflight = true;
  historyIndexStale = false;
  requests.request({ type: 'history', run: run.info.id, limit: 0 }, (outcome) => onHistoryAnswer(run.info.id, outcome), false);
}

function pick(step: number | null): void {
  pinned = step;
  wanted = step !== null && selectedRun() !== null && !historyCache.has(cacheKey(selectedRun()!.info.id, step)) ? step : null;
  fetchWanted();
  detailDirty = true;
}

function fetchWanted(): void {
  const run = selectedRun();
  if (wanted === null || run === null || historyInflight || connection !== 'open') return;
  if (!historyBudget.take()) return; // tried again from the frame loop
  const frameBytes = Math.max(1, run.info.parameters * 4);
  const limit = Math.max(1, Math.min(16, Math.floor(HISTORY_ANSWER_BYTES / frameBytes)));
  historyInflight = true;
  // ask from a little before the wanted step, so a drag back and forth finds its neighbours cached
  const steps = historyIndex?.steps ?? [];
  const at = steps.indexOf(wanted);
  const from = at > 0 ? steps[Math.max(0, at - Math.floor(limit / 4))] : wanted;
  requests.request({ type: 'history', run: run.info.id, fromStep: from, limit }, (outcome) => onHistoryAnswer(run.info.id, outcome), false);
}

function onHistoryAnswer(run: string, outcome: Outcome): void {
  historyInflight = false;
  const result = outcome.ok ? parseHistoryResult(outcome.ack?.result) : null;
  if (result !== null && result.run === run) {
    historyIndex = { ...result, at: performance.now() };
    if (wanted !== null && (result.sent.includes(wanted) || historyCache.has(cacheKey(run, wanted)))) wanted = null;
  }
  if (wanted !== null && result !== null && result.sent.length > 0 && !result.steps.includes(wanted)) {
    // the wanted step was thinned away meanwhile: show the nearest one sent
    pinned = result.sent[0];
    wanted = null;
  }
  detailDirty = true;
  fetchWanted();
}

/** The frame the detail views show: the pinned historic one, or the live one. */
function shownFrame(run: RunStore): DecodedFrame | null {
  if (pinned === null) return run.params;
  return historyCache.get(cacheKey(run.info.id, pinned)) ?? null;
}

// ---------------------------------------------------------------- rendering
/**
 * A view and when to redraw it: when its key (what it shows) changed, at most every
 * `minMs`. Heavy views share a per-frame budget: once `FRAME_BUDGET_MS` of drawing is
 * spent in a frame, the rest wait for the next one (round-robin), so no frame is long
 * however much arrived at once.
 */
interface ViewTask {
  readonly name: string;
  readonly minMs: number;
  readonly key: () => string;
  readonly draw: () => void;
  drawnKey: string;
  last: number;
}
const FRAME_BUDGET_MS = 6;
let resizeVersion = 0;
window.addEventListener('resize', () => { resizeVersion++; });
let lastHeader = 0;
let frames = 0;
let fps = 0;
let fpsSince = performance.now();
let nextTask = 0;
const connectionEl = $('connection');
const connectionText = connectionEl.querySelector('.connection-text') as HTMLElement;
const wireStats = $('wire-stats');
const gatewaysEl = $('gateways');
/** A cluster's gateways (the hello of the page's gateway; none from a plain server): where the page moves when its gateway dies. */
let gateways: { readonly url: string; readonly wsUrl: string }[] = [];
/** Reconnects that failed in a row (a gateway that is gone, not a blip, after two). */
let failedReconnects = 0;
/** The frame objects drawn: a distinct number per frame, for the views' keys. */
const frameIds = new WeakMap<DecodedFrame, number>();
let frameCounter = 0;
const frameId = (frame: DecodedFrame | null): number => {
  if (frame === null) return 0;
  let n = frameIds.get(frame);
  if (n === undefined) frameIds.set(frame, (n = ++frameCounter));
  return n;
};

const selectionKey = () => `${selectedRun()?.info.id ?? ''}|${pinned ?? 'live'}|${resizeVersion}`;
const shownKey = () => {
  const run = selectedRun();
  return `${selectionKey()}|${run === null ? 0 : frameId(shownFrame(run))}`;
};
const task = (name: string, minMs: number, key: () => string, draw: () => void): ViewTask => ({ name, minMs, key, draw, drawnKey: '\u0000', last: -Infinity });
const tasks: readonly ViewTask[] = [
  task('curves', 100, () => `${store.listVersion}|${config.x}|${config.log}|${config.metric}|${pinned}|${connection === 'open'}|${[...store.runs.values()].map((r) => `${r.visible ? `${r.metricsVersion}.${r.marksVersion}` : '-'}`).join(',')}`, drawCurves),
  task('network', 0, () => `${shownKey()}|${selectedRun()?.diverged}`, () => {
    const run = selectedRun();
    network.draw(run?.info ?? null, run === null ? null : shownFrame(run), run?.diverged === true);
  }),
  task('heatmaps', 0, () => `${shownKey()}|${config.layer}`, () => {
    const run = selectedRun();
    heatmaps.draw(run?.info ?? null, run === null ? null : shownFrame(run), run?.weightDist.map((d) => d.latest) ?? [], config.layer);
  }),
  task('surface', 100, () => `${shownKey()}|${selectedRun()?.predictionsVersion ?? 0}`, () => {
    const run = selectedRun();
    const applies = DecisionSurface.applies(run);
    show($('surface-card'), applies);
    if (applies) surface.draw(run, run === null ? null : shownFrame(run));
    drawKernelsNote();
  }),
  task('prediction', 200, () => `${shownKey()}|${selectedRun()?.predictionsVersion ?? 0}`, () => {
    const run = selectedRun();
    prediction.draw(run, pinned === null || run === null ? null : { step: pinned, frame: shownFrame(run) });
  }),
  task('distributions', 250, () => `${selectionKey()}|${selectedRun()?.distVersion ?? 0}`, () => {
    const run = selectedRun();
    distributions.draw(run?.info ?? null, run?.weightDist ?? [], run?.gradDist ?? [], pinned);
  }),
];

function render(now: number): void {
  requestAnimationFrame(render);
  frames++;
  if (now - fpsSince >= 1000) {
    fps = (frames * 1000) / (now - fpsSince);
    frames = 0;
    fpsSince = now;
    headerDirty = true;
  }
  requests.expire();
  summarizeFrames();
  if (headerDirty && now - lastHeader > 250) drawHeader(now);
  if (now - lastAbout > 500) drawAbout(now);
  runList.draw(selectedRun()?.info.id ?? '');
  drawSide();
  // the views, round-robin within the frame's budget
  const start = performance.now();
  for (let k = 0; k < tasks.length; k++) {
    const t = tasks[(nextTask + k) % tasks.length];
    if (now - t.last < t.minMs) continue;
    const key = t.key();
    if (key === t.drawnKey) continue;
    if (performance.now() - start > FRAME_BUDGET_MS) {
      nextTask = (nextTask + k) % tasks.length;
      break;
    }
    t.drawnKey = key;
    t.last = now;
    t.draw();
  }
  if (connection === 'open') {
    if (wanted !== null) fetchWanted();
    else refreshIndex(false);
  }
}

let lastAbout = -Infinity;
const aboutDescription = $('about-description');
const aboutTask = $('about-task');
const aboutLeader = $('about-leader');

/**
 * The line under the header: what the page shows (the experiment's description, from the
 * server's hello), the task, and who leads now — the run with the lowest rolling loss, with
 * every run's value beside it.
 */
function drawAbout(now: number): void {
  lastAbout = now;
  const runs = [...store.runs.values()];
  setText(aboutDescription, experiment?.description ?? (runs.length === 0 ? 'no runs on this server yet' : `${runs.length} run${runs.length === 1 ? '' : 's'} training online`));
  const losses = [...new Set(runs.map((r) => r.info.loss))];
  setText(aboutTask, experiment?.task ?? (losses.length === 0 ? '' : losses.map((l) => (l === 'mse' ? 'regression (mse)' : `classification (${l})`)).join(', ')));
  const scored = runs.filter((r) => typeof r.metrics?.metrics.loss === 'number').sort((a, b) => a.metrics!.metrics.loss! - b.metrics!.metrics.loss!);
  aboutLeader.dataset.leader = scored.length >= 2 ? scored[0].info.id : '';
  setText(aboutLeader, scored.length < 2 ? '' : `leader: ${scored[0].info.id} · rolling ${scored[0].info.loss} ${scored.map((r) => `${r.info.id} ${formatNumber(r.metrics!.metrics.loss)}`).join(' vs ')}`);
}

function drawHeader(now: number): void {
  headerDirty = false;
  lastHeader = now;
  document.body.dataset.connection = connection;
  document.body.dataset.access = access;
  connectionEl.className = `connection ${connection}`;
  setText(connectionText, connection === 'open' ? 'live' : connection === 'connecting' ? 'connecting…' : connection === 'reconnecting' ? `reconnecting · ${connectionDetail}` : 'closed');
  const s = socket.stats;
  setText(wireStats, `${Math.round(fps)} fps · ${formatCount(s.messages)} msgs · ${formatCount(s.frames)} frames${s.ignoredMessages + s.badFrames > 0 ? ` · ${s.ignoredMessages + s.badFrames} ignored` : ''}${serverErrors > 0 ? ` · ${serverErrors} server errors` : ''}${s.reconnects > 0 ? ` · ${s.reconnects} reconnects` : ''}`);
  wireStats.dataset.ignored = String(s.ignoredMessages + s.badFrames);
  gatewaysEl.hidden = gateways.length === 0;
  setText(gatewaysEl, gateways.length === 0 ? '' : `gateway ${printable(location.host, 60)} of ${gateways.length}`);
  gatewaysEl.title = gateways.map((g) => g.url).join('\n');
  gatewaysEl.dataset.count = String(gateways.length);
  const control = access === 'control';
  if (!tokenStatus.classList.contains('error') || control) {
    setText(tokenStatus, control ? 'control' : 'read-only');
    tokenStatus.className = control ? 'token-status ok' : 'token-status';
  }
  show(tokenForget, control);
  show(tokenInput, !control);
  show($('token-submit'), !control);
}

/** The footer: which kernels compute the fitted curve or surface here, and why js when it is js. */
function drawKernelsNote(): void {
  const backend = surface.backend;
  if (kernelsNote.dataset.backend === backend) return;
  kernelsNote.dataset.backend = backend;
  const why = backend === 'wasm' ? 'WebAssembly SIMD'
    : kernels.name === 'wasm' ? 'this model does not fit the page’s WebAssembly memory'
    : wasmSupported() ? 'the WebAssembly kernels did not load' : 'no WebAssembly SIMD in this browser';
  setText(kernelsNote, `fitted curve and surface computed in this page by the engine’s forward pass on the ${backend} kernels (${why})`);
}
drawKernelsNote();

/**
 * A read-only handle for the browser console and the tests: the kernels in use, and the last
 * fitted curve or surface exactly as computed (copies).
 */
Object.defineProperty(globalThis, 'streamgrad', {
  value: Object.freeze({
    backend: () => surface.backend,
    lastEvaluation: (): { rows: number; inputs: number[]; outputs: number[] } | null => {
      const e: Evaluation | null = surface.lastEvaluation;
      return e === null ? null : { rows: e.rows, inputs: Array.from(e.inputs), outputs: Array.from(e.outputs) };
    },
  }),
});

const METRIC_LABEL: Record<MetricChoice, string> = {
  mae: 'rolling MAE', accuracy: 'rolling accuracy', batchLoss: 'batch loss', gradNorm: 'gradient norm', learningRate: 'learning rate', samplesPerSecond: 'samples / s',
};

function drawCurves(): void {
  const runs = [...store.runs.values()].filter((r) => r.visible);
  const xCol = config.x === 'time' ? COL.time : COL.step;
  const xLabel = config.x === 'time' ? 'time (s)' : 'step';
  // while the page is not connected, what it shows may be old: every run is greyed
  const stale = connection !== 'open';
  const series = runs.map((r) => ({ label: r.info.id, color: stale ? STALE_COLOR : r.color, width: 2 }));
  lossChart.element.dataset.stale = String(stale);
  const marks: ChartMark[] = runs.flatMap((r) => r.marks.map((m) => ({
    x: config.x === 'time' ? m.time : m.step,
    color: stale ? STALE_COLOR : r.color,
    style: m.kind === 'drift' ? 'solid' as const : m.kind === 'drift-warning' ? 'dotted' as const : 'dashed' as const,
  })));
  lossChart.setMarks(marks);
  lossChart.configure(series, { xLabel, yLabel: runs[0]?.info.loss ?? 'loss', log: config.log });
  const lossData = alignSeries(runs.map((r) => ({ x: r.series.column(xCol), y: r.series.column(COL.loss) })), config.log ? positiveOrNull : finiteOrNull);
  lossChart.setData(lossData as uPlot.AlignedData);
  lossChart.element.dataset.points = String(lossData[0].length);
  const metric = config.metric;
  metricChart.configure(series, { xLabel, yLabel: METRIC_LABEL[metric], log: metric === 'gradNorm' && config.log });
  metricChart.setData(alignSeries(runs.map((r) => ({ x: r.series.column(xCol), y: r.series.column(COL[metric]) })), metric === 'gradNorm' && config.log ? positiveOrNull : finiteOrNull) as uPlot.AlignedData);
  const marker = pinned === null ? null : config.x === 'step' ? pinned : timeOfStep(selectedRun(), pinned);
  lossChart.setMarker(marker);
  metricChart.setMarker(marker);
}

/** Where a step is on the time axis: the time of the run's first kept point at or after it (null when unknown). */
function timeOfStep(run: RunStore | null, step: number): number | null {
  if (run === null) return null;
  const steps = run.series.column(COL.step), times = run.series.column(COL.time);
  for (let i = 0; i < steps.length; i++) if (steps[i] >= step) return Number.isFinite(times[i]) ? times[i] : null;
  return null;
}

const summarized = new Map<string, { params: DecodedFrame | null; grads: DecodedFrame | null }>();

/** One distribution column per new frame of every run (not per message: latest wins). */
function summarizeFrames(): void {
  for (const r of store.runs.values()) {
    const done = summarized.get(r.info.id);
    if (done !== undefined && done.params === r.params && done.grads === r.grads) continue;
    if (r.params !== (done?.params ?? null)) store.summarize(r, 'parameters');
    if (r.grads !== (done?.grads ?? null)) store.summarize(r, 'gradients');
    summarized.set(r.info.id, { params: r.params, grads: r.grads });
  }
}

let sideKey = '';
/** The light, DOM-only parts about the selected run: names, timeline, controls, events. */
function drawSide(): void {
  const run = selectedRun();
  const id = run?.info.id ?? '';
  const key = `${id}|${run?.version ?? 0}|${pinned}|${historyIndex?.at ?? 0}|${access}|${connection}|${detailDirty}`;
  if (key === sideKey) return;
  sideKey = key;
  detailDirty = false;
  for (const el of ['controls-run', 'timeline-run', 'network-run']) setText($(el), id === '' ? '' : `· ${id}`);
  const frame = run === null ? null : shownFrame(run);
  const steps = historyIndex !== null && historyIndex.run === id ? historyIndex.steps : [];
  scrubber.draw({ steps, pinned, current: run?.info.step ?? 0, loaded: pinned === null || frame !== null });
  controls.draw({
    control: access === 'control',
    run: run?.info.id ?? null,
    runState: run === null ? 'idle' : run.info.state,
    learningRate: run?.info.optimizer.learningRate ?? null,
    connected: connection === 'open',
  });
  drawEvents(run);
}

let eventsShown: unknown = null;
function drawEvents(run: RunStore | null): void {
  const last = run?.events[run.events.length - 1] ?? null;
  if (last === eventsShown) return;
  eventsShown = last;
  eventsList.replaceChildren(...(run?.events ?? []).slice(-12).reverse().map((e) => {
    const detail = e.detail === undefined ? '' : describeDetail(e.detail);
    return h('li', { class: `event event-${e.event}` }, h('span', { class: 'event-name' }, e.event), ` step ${formatCount(e.step)}${detail}`);
  }));
}

function describeDetail(detail: Readonly<Record<string, unknown>>): string {
  if (typeof detail.detector === 'string') return ` · ${printable(detail.detector, 40)}${typeof detail.index === 'number' ? ` at sample ${formatCount(detail.index)}` : ''}`;
  if (typeof detail.reaction === 'string') {
    const what = typeof detail.from === 'number' && typeof detail.to === 'number' ? ` ${formatNumber(detail.from)} → ${formatNumber(detail.to)}` : typeof detail.action === 'string' ? ` ${printable(detail.action, 20)}` : detail.ended === true ? ' ended' : '';
    return ` · ${printable(detail.reaction, 40)}${what}`;
  }
  if (typeof detail.from === 'number' && typeof detail.to === 'number') return ` · ${formatNumber(detail.from)} → ${formatNumber(detail.to)}`;
  if (typeof detail.message === 'string') return ` · ${printable(detail.message, 120)}`;
  if (typeof detail.path === 'string') return ` · ${printable(detail.path, 80)}`;
  return '';
}

// ---------------------------------------------------------------- start: everything above is declared, so connect
const requests = new Requests((message) => socket.send(message));
const socket = new DashboardSocket(socketUrl(location), {
  state(state, detail) {
    connection = state;
    connectionDetail = detail;
    if (state === 'open') failedReconnects = 0;
    else if (state === 'reconnecting' && /retrying in/.test(detail) && ++failedReconnects >= 2) moveToAnotherGateway();
    if (state !== 'open') {
      access = 'read-only';
      requests.dropped();
      historyInflight = false;
    }
    headerDirty = true;
  },
  message: onMessage,
  frame: onFrame,
});

/**
 * The page's gateway is gone (two reconnects failed): the page moves to the next gateway
 * of the cluster in the list it last had, loading itself from there (its own origin, so
 * its security policy and the gateway's origin check stay as strict as ever; a control
 * token is entered again there).
 */
function moveToAnotherGateway(): void {
  const others = gateways.filter((g) => {
    try {
      return new URL(g.url).origin !== location.origin;
    } catch {
      return false;
    }
  });
  if (others.length === 0) return;
  const next = others[0]!;
  location.assign(new URL(`${location.pathname}${location.hash}`, next.url).href);
}

/** The gateways a hello lists (a cluster gateway's), only well-formed http(s) and ws(s) addresses. */
function gatewaysOf(list: unknown): { url: string; wsUrl: string }[] {
  if (!Array.isArray(list)) return [];
  return list
    .filter((g): g is { url: string; wsUrl: string } => typeof g === 'object' && g !== null && typeof (g as { url?: unknown }).url === 'string' && /^https?:\/\//.test((g as { url: string }).url) && typeof (g as { wsUrl?: unknown }).wsUrl === 'string' && /^wss?:\/\//.test((g as { wsUrl: string }).wsUrl))
    .slice(0, 64)
    .map((g) => ({ url: g.url, wsUrl: g.wsUrl }));
}

requestAnimationFrame(render);
