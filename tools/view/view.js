// voxtile view: the page. Plain JavaScript, canvas 2D, no framework, no network
// beyond this server's API (docs/cli.md, "view").
//
// Drawing follows `voxtile preview` (tools/cmd_preview.c):
// - axis z shows rows y, columns x; axis y rows z, columns x; axis x rows z, columns y;
// - radiological orientation: the server's "flip" per spatial axis (z, y, x);
// - physical aspect: one scale in mm per pixel for the three views; output pixel u of a
//   slice of n voxels drawn out pixels long shows voxel floor((u + 0.5) * n / out)
//   (nearest neighbour, so every pixel is one voxel's colour);
// - grey = clamp(round((v - (C - W/2)) / W * 255), 0, 255), NaN 0, v scaled as `read` does;
// - labels L != 0: round((1 - a) * grey + a * colour(L)) per channel, preview's 20 colours;
// - tile grid: (255, 230, 0) blended with weight 0.6 on the first pixel at or after each
//   tile boundary.
// State for tests is in the DOM: each canvas has data-index, data-level, data-overlay-level,
// data-wc, data-ww, data-draws; #hover has data-voxel, data-world, data-value, data-label;
// body has data-ready="1" after the first full-resolution drawing of the three views.
'use strict';

const AXES = ['z', 'y', 'x'];
const AXIS_NAME = { z: 'Axial', y: 'Coronal', x: 'Sagittal' };
const PRESETS = { soft: [40, 400], lung: [-600, 1500], bone: [400, 1800], brain: [40, 80] };
const LABEL_TABLE = [
  [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
  [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
  [0, 128, 128], [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0],
  [170, 255, 195], [128, 128, 0], [255, 215, 180], [0, 0, 128], [255, 255, 255],
];
const GRID_COLOUR = [255, 230, 0];
const CACHE_BYTES = 96 * 1024 * 1024;

const $ = (id) => document.getElementById(id);

// Colour of label value v (v != 0), as render.c's label_colour.
function labelColour(v) {
  if (v >= 1 && v <= 20) return LABEL_TABLE[v - 1];
  const h = ((Math.abs(v) * 0.6180339887498949) % 1) * 6;
  const i = Math.floor(h);
  const f = h - i, V = 0.95 * 255, p = 0, q = V * (1 - f), t = V * f;
  const rgb = [[V, t, p], [q, V, p], [p, V, t], [p, q, V], [t, p, V], [V, p, q]][i % 6];
  return rgb.map(Math.round);
}
const colourCache = new Map();
function labelRGB(v) {
  let c = colourCache.get(v);
  if (!c) { c = labelColour(v); colourCache.set(v, c); }
  return c;
}

// ---- slices ----------------------------------------------------------------

let f16table = null;
function float16ToFloat32(u16) {
  if (!f16table) {
    f16table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
      f16table[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  const out = new Float32Array(u16.length);
  for (let i = 0; i < u16.length; i++) out[i] = f16table[u16[i]];
  return out;
}

function decode(buf, dtype) {
  switch (dtype) {
    case 'uint8': return new Uint8Array(buf);
    case 'int8': return new Int8Array(buf);
    case 'uint16': return new Uint16Array(buf);
    case 'int16': return new Int16Array(buf);
    case 'uint32': return new Uint32Array(buf);
    case 'int32': return new Int32Array(buf);
    case 'float32': return new Float32Array(buf);
    case 'float64': return new Float64Array(buf);
    case 'float16': return float16ToFloat32(new Uint16Array(buf));
    case 'bfloat16': {
      const u = new Uint16Array(buf), w = new Uint32Array(u.length);
      for (let i = 0; i < u.length; i++) w[i] = u[i] << 16;
      return new Float32Array(w.buffer);
    }
    default: throw new Error(`unknown dtype ${dtype}`);
  }
}

const cache = new Map();   // key -> {data, rows, cols}, oldest first
let cacheBytes = 0;
const pending = new Map(); // key -> {promise, signal}

function cachePut(key, s) {
  cache.set(key, s);
  cacheBytes += s.data.byteLength;
  for (const [k, old] of cache) {
    if (cacheBytes <= CACHE_BYTES) break;
    cache.delete(k);
    cacheBytes -= old.data.byteLength;
  }
}
function cacheGet(key) {
  const s = cache.get(key);
  if (s) { cache.delete(key); cache.set(key, s); } // most recently used last
  return s;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function getJSON(url) {
  const r = await fetch(url);
  const j = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
  if (!r.ok) throw new Error(j.error || `${r.status}`);
  return j;
}

function sliceURL(store, array, channel, axis, index) {
  let u = `/api/slice?store=${store}&array=${encodeURIComponent(array)}&axis=${axis}&index=${index}`;
  if (channel) u += `&channel=${channel}`;
  return u;
}

// One slice (cached); rejects with the server's message.
function fetchSlice(store, array, channel, axis, index, signal) {
  const key = `${store}/${array}/${channel}/${axis}/${index}`;
  const hit = cacheGet(key);
  if (hit) return Promise.resolve(hit);
  const pend = pending.get(key);
  if (pend && !(pend.signal && pend.signal.aborted)) return pend.promise; // an aborted one is asked again
  const p = (async () => {
    for (let attempt = 0; ; attempt++) {
      const r = await fetch(sliceURL(store, array, channel, axis, index), { signal });
      if (r.status === 503 && attempt < 30) { await sleep(100 * (attempt + 1)); continue; } // server busy
      if (!r.ok) {
        const j = await r.json().catch(() => ({ error: `${r.status} ${r.statusText}` }));
        throw new Error(j.error || `${r.status}`);
      }
      const buf = await r.arrayBuffer();
      const [rows, cols] = r.headers.get('X-Voxtile-Shape').split(',').map(Number);
      const s = { data: decode(buf, r.headers.get('X-Voxtile-Dtype')), rows, cols };
      cachePut(key, s);
      return s;
    }
  })();
  const entry = { promise: p, signal };
  pending.set(key, entry);
  const forget = () => { if (pending.get(key) === entry) pending.delete(key); };
  p.then(forget, forget);
  return p;
}

// ---- state -------------------------------------------------------------------

const S = {
  stores: [],
  store: 0,
  gen: 0,            // bumped when the case or the arrays change: late answers are dropped
  arrays: new Map(), // name -> info of every base array of 3 or more dimensions
  image: null,       // info of the image array (level 0)
  overlay: null,     // info of the label array over it, or null
  channel: 0,
  wc: 40, ww: 400, preset: 'soft',
  autoPending: false, // the default window is auto: set it when the first axial slice arrives
  alpha: 0.5,
  grid: false,
  cross: true,       // the crosshair over each view
  active: 'z',
  mmpp: 1,
  views: {},
  ready: false,
};
window.voxtileView = S; // for a console; tests read the DOM

function lead(info) { return info.ndim - 3; }
function nAxis(info, a) { return info.shape[lead(info) + AXES.indexOf(a)]; }
function rowAxis(a) { return a === 'z' ? 'y' : 'z'; }
function colAxis(a) { return a === 'x' ? 'y' : 'x'; }
function spacingOf(info, a) { return info.spacing[AXES.indexOf(a)]; }
function flipOf(info, a) { return !!info.flip[AXES.indexOf(a)]; }

function status(msg) { $('status').textContent = msg || ''; }

function fmt(v) {
  if (typeof v !== 'number') return String(v);
  if (Number.isNaN(v)) return 'NaN';
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(6)));
}

// ---- layout ------------------------------------------------------------------

// One scale (mm per pixel) that fits the three views in their panels; an integer
// number of pixels per finest voxel when the views are at least that large.
// mm per pixel that fits each view's extent (mm) in its panel (px)
function fitScale(img, panel) {
  let mmpp = 0;
  for (const a of AXES) {
    const [pw, ph] = panel(a).map((n) => Math.max(40, n));
    const r = rowAxis(a), c = colAxis(a);
    mmpp = Math.max(mmpp, (nAxis(img, c) * spacingOf(img, c)) / pw, (nAxis(img, r) * spacingOf(img, r)) / ph);
  }
  return mmpp;
}

function layout() {
  const img = S.image;
  if (!img) return;
  const sp = img.spacing;
  // the arrangement that draws the slices largest: three in a row, the axial view beside the
  // other two, or three in a column (panel sizes estimated from the area, less gaps and captions)
  const views = $('views'), W = views.clientWidth - 16, H = views.clientHeight - 16, cap = 24;
  const shapes = {
    row: () => [(W - 16) / 3, H - cap],
    main: (a) => (a === 'z' ? [(W - 8) / 2, H - cap] : [(W - 8) / 2, (H - 8) / 2 - cap]),
    col: () => [W, (H - 16) / 3 - cap],
  };
  let best = 'row';
  for (const k of ['main', 'col']) if (fitScale(img, shapes[k]) < fitScale(img, shapes[best]) * 0.97) best = k;
  views.className = best;
  for (const a of AXES) { // measure the cells, not the canvases
    for (const cv of [S.views[a].canvas, S.views[a].cross]) cv.style.width = cv.style.height = '0px';
  }
  let mmpp = fitScale(img, (a) => {
    const fig = $(`view-${a}`).closest('figure');
    return [fig.clientWidth, fig.clientHeight - cap];
  });
  const p = Math.min(...sp);
  let zoom = p / mmpp;
  if (zoom >= 1) zoom = Math.floor(zoom);
  S.mmpp = p / zoom;
  for (const a of AXES) {
    const v = S.views[a], r = rowAxis(a), c = colAxis(a);
    const nr = nAxis(img, r), nc = nAxis(img, c);
    const h = Math.max(1, Math.round((nr * spacingOf(img, r)) / S.mmpp));
    const w = Math.max(1, Math.round((nc * spacingOf(img, c)) / S.mmpp));
    for (const cv of [v.canvas, v.cross]) {
      cv.width = w;
      cv.height = h;
      cv.style.width = `${w}px`;
      cv.style.height = `${h}px`;
    }
    // output pixel -> voxel index (flipped for display)
    const fr = flipOf(img, r), fc = flipOf(img, c);
    v.rowIdx = new Int32Array(h);
    for (let u = 0; u < h; u++) {
      const i = Math.min(nr - 1, Math.floor(((u + 0.5) * nr) / h));
      v.rowIdx[u] = fr ? nr - 1 - i : i;
    }
    v.colIdx = new Int32Array(w);
    for (let x = 0; x < w; x++) {
      const i = Math.min(nc - 1, Math.floor(((x + 0.5) * nc) / w));
      v.colIdx[x] = fc ? nc - 1 - i : i;
    }
    v.canvas.dataset.rows = nr;
    v.canvas.dataset.cols = nc;
    v.canvas.dataset.flipRows = fr ? 1 : 0;
    v.canvas.dataset.flipCols = fc ? 1 : 0;
  }
}

// ---- drawing -----------------------------------------------------------------

// The pyramid levels of an array usable for a view: [{level, name, factor: [fz, fy, fx], shape}]
function levelsOf(info) {
  const base = info.levels.find((l) => l.level === 0) || { level: 0, name: info.name, shape: info.shape, spacing: info.spacing };
  return info.levels.map((l) => ({
    level: l.level,
    name: l.name,
    shape: l.shape.slice(l.shape.length - 3),
    factor: l.spacing.map((s, k) => Math.max(1, Math.round(s / base.spacing[k]))),
  }));
}

// The finest cached slice of an array for view v: {slice, lv} or null.
function bestSlice(info, v) {
  if (!info) return null;
  for (const lv of info.lv) {
    const k = AXES.indexOf(v.axis);
    const idx = Math.min(lv.shape[k] - 1, Math.floor(v.index / lv.factor[k]));
    const ch = info === S.image ? S.channel : 0;
    const s = cache.get(`${S.store}/${lv.name}/${ch}/${v.axis}/${idx}`);
    if (s) return { slice: s, lv };
  }
  return null;
}

function draw(v) {
  const img = S.image;
  if (!img || !v.rowIdx) return;
  const im = bestSlice(img, v);
  if (!im) return;
  const ov = S.overlay ? bestSlice(S.overlay, v) : null;
  const cv = v.canvas, W = cv.width, H = cv.height;
  const ctx = cv.getContext('2d');
  const out = ctx.createImageData(W, H);
  const px = out.data;
  const r = rowAxis(v.axis), c = colAxis(v.axis), kr = AXES.indexOf(r), kc = AXES.indexOf(c);
  const map = (idx, lv, k) => {
    const f = lv.factor[k], n = lv.shape[k], m = new Int32Array(idx.length);
    for (let i = 0; i < idx.length; i++) m[i] = Math.min(n - 1, Math.floor(idx[i] / f));
    return m;
  };
  const ir = map(v.rowIdx, im.lv, kr), ic = map(v.colIdx, im.lv, kc);
  const data = im.slice.data, cols = im.slice.cols;
  const slope = img.scaling ? img.scaling.slope : 1, inter = img.scaling ? img.scaling.inter : 0;
  const lo = S.wc - S.ww / 2, ww = S.ww;
  const labelsOnly = !!img.labels;
  let or = null, oc = null, odata = null, ocols = 0;
  if (ov) {
    or = map(v.rowIdx, ov.lv, kr); oc = map(v.colIdx, ov.lv, kc);
    odata = ov.slice.data; ocols = ov.slice.cols;
  }
  const a = S.alpha;
  for (let u = 0; u < H; u++) {
    const row = ir[u] * cols, orow = ov ? or[u] * ocols : 0;
    for (let x = 0; x < W; x++) {
      const o = 4 * (u * W + x);
      const raw = data[row + ic[x]];
      let R, G, B;
      if (labelsOnly) {
        if (raw === 0 || Number.isNaN(raw)) R = G = B = 0;
        else [R, G, B] = labelRGB(Math.trunc(raw));
      } else {
        const val = raw * slope + inter;
        let g = Number.isNaN(val) ? 0 : Math.round(((val - lo) / ww) * 255);
        g = g < 0 ? 0 : g > 255 ? 255 : g;
        R = G = B = g;
      }
      if (ov) {
        const L = odata[orow + oc[x]];
        if (L !== 0 && !Number.isNaN(L)) {
          const col = labelRGB(Math.trunc(L));
          R = Math.round((1 - a) * R + a * col[0]);
          G = Math.round((1 - a) * G + a * col[1]);
          B = Math.round((1 - a) * B + a * col[2]);
        }
      }
      px[o] = R; px[o + 1] = G; px[o + 2] = B; px[o + 3] = 255;
    }
  }
  if (S.grid) drawGrid(v, px, W, H);
  ctx.putImageData(out, 0, 0);
  const d = cv.dataset;
  d.index = v.index;
  d.count = nAxis(img, v.axis);
  d.level = im.lv.level;
  d.overlayLevel = ov ? ov.lv.level : '';
  d.wc = S.wc;
  d.ww = S.ww;
  d.alpha = S.alpha;
  d.grid = S.grid ? 1 : 0;
  d.draws = (Number(d.draws) || 0) + 1;
  if (S.autoPending && v.axis === 'z' && im.lv.level === 0) { // the default auto window, now that there is data
    setWindow(...autoWindow(), 'auto');
    return;
  }
  $(`cap-${v.axis}`).textContent =
    `${AXIS_NAME[v.axis]}  ${v.axis} ${v.index} / ${nAxis(img, v.axis) - 1}` + (im.lv.level ? `  (level ${im.lv.level})` : '');
  checkReady();
}

function blend(px, o, col, w) {
  px[o] = Math.round((1 - w) * px[o] + w * col[0]);
  px[o + 1] = Math.round((1 - w) * px[o + 1] + w * col[1]);
  px[o + 2] = Math.round((1 - w) * px[o + 2] + w * col[2]);
}

function drawGrid(v, px, W, H) {
  const img = S.image, r = rowAxis(v.axis), c = colAxis(v.axis);
  const nr = nAxis(img, r), nc = nAxis(img, c);
  const tr = img.tile[lead(img) + AXES.indexOf(r)], tc = img.tile[lead(img) + AXES.indexOf(c)];
  const fr = flipOf(img, r), fc = flipOf(img, c);
  for (let b = tr; b < nr; b += tr) {
    const db = fr ? nr - b : b, u = Math.ceil((db * H) / nr - 1e-9);
    if (u >= 0 && u < H) for (let x = 0; x < W; x++) blend(px, 4 * (u * W + x), GRID_COLOUR, 0.6);
  }
  for (let b = tc; b < nc; b += tc) {
    const db = fc ? nc - b : b, x = Math.ceil((db * W) / nc - 1e-9);
    if (x >= 0 && x < W) for (let u = 0; u < H; u++) blend(px, 4 * (u * W + x), GRID_COLOUR, 0.6);
  }
}

// The crosshair: where the two other views' slices cut this one (their index, at the centre of
// its pixels), on the transparent canvas over the slice.
function drawCross(v) {
  const cv = v.cross, ctx = cv.getContext('2d');
  ctx.clearRect(0, 0, cv.width, cv.height);
  const img = S.image;
  if (!S.cross || !img || !v.rowIdx) return;
  ctx.fillStyle = 'rgba(90, 170, 255, 0.7)';
  const r = rowAxis(v.axis), c = colAxis(v.axis);
  const nr = nAxis(img, r), nc = nAxis(img, c);
  const ir = flipOf(img, r) ? nr - 1 - S.views[r].index : S.views[r].index;
  const ic = flipOf(img, c) ? nc - 1 - S.views[c].index : S.views[c].index;
  const y = Math.floor(((ir + 0.5) * cv.height) / nr), x = Math.floor(((ic + 0.5) * cv.width) / nc);
  ctx.fillRect(0, y, cv.width, 1);
  ctx.fillRect(x, 0, 1, cv.height);
  cv.dataset.row = y;
  cv.dataset.col = x;
}
function drawCrossAll() { for (const a of AXES) drawCross(S.views[a]); }

function checkReady() {
  if (S.ready) return;
  for (const a of AXES) {
    const d = S.views[a].canvas.dataset;
    if (d.level !== '0' || (S.overlay && d.overlayLevel !== '0')) return;
  }
  S.ready = true;
  document.body.dataset.ready = '1';
}

// Fetch what view v needs (the coarsest level first, then the full one) and draw.
function request(v) {
  const gen = S.gen, index = v.index;
  const arrays = [S.image, S.overlay].filter(Boolean);
  if (v.abort) v.abort.abort();
  v.abort = new AbortController();
  const signal = v.abort.signal;
  draw(v); // whatever is cached already
  const k = AXES.indexOf(v.axis);
  const get = (info, lv, sig) => {
    const idx = Math.min(lv.shape[k] - 1, Math.floor(index / lv.factor[k]));
    const ch = info === S.image ? S.channel : 0;
    return fetchSlice(S.store, lv.name, ch, v.axis, idx, sig);
  };
  const done = () => { if (gen === S.gen && v.index === index) draw(v); };
  const fail = (e) => { if (e.name !== 'AbortError' && gen === S.gen) status(e.message); };
  for (const info of arrays) {
    const lvs = info.lv;
    if (lvs.length > 1) get(info, lvs[lvs.length - 1], undefined).then(done, fail); // small: never aborted
    get(info, lvs[0], signal).then(done, fail);
  }
}

function drawAll() { for (const a of AXES) draw(S.views[a]); }

function setIndex(v, index) {
  const n = nAxis(S.image, v.axis);
  index = Math.max(0, Math.min(n - 1, index));
  if (index === v.index) return;
  v.index = index;
  request(v);
  drawCrossAll();
}

// ---- window ------------------------------------------------------------------

function setWindow(wc, ww, preset) {
  S.autoPending = false; // a window chosen (or computed) replaces the pending default
  S.wc = wc;
  S.ww = ww > 0 ? ww : 1e-6;
  S.preset = preset;
  $('preset').value = preset;
  $('wc').value = fmt(S.wc);
  $('ww').value = fmt(S.ww);
  document.body.dataset.wc = S.wc;
  document.body.dataset.ww = S.ww;
  document.body.dataset.preset = preset;
  drawAll();
}

function scaledRange(info) {
  let mn = info.min == null ? 0 : info.min, mx = info.max == null ? 1 : info.max;
  if (info.scaling) {
    const a = mn * info.scaling.slope + info.scaling.inter, b = mx * info.scaling.slope + info.scaling.inter;
    mn = Math.min(a, b); mx = Math.max(a, b);
  }
  return [mn, mx];
}

// auto: the 1st and 99th percentiles of the axial slice shown (else the value range)
function autoWindow() {
  const img = S.image, v = S.views.z;
  const best = bestSlice(img, v);
  if (!best) return rangeWindow();
  const slope = img.scaling ? img.scaling.slope : 1, inter = img.scaling ? img.scaling.inter : 0;
  const d = best.slice.data, vals = [];
  const step = Math.max(1, Math.floor(d.length / 65536));
  for (let i = 0; i < d.length; i += step) {
    const x = d[i] * slope + inter;
    if (Number.isFinite(x)) vals.push(x);
  }
  if (!vals.length) return rangeWindow();
  vals.sort((p, q) => p - q);
  const lo = vals[Math.floor(0.01 * (vals.length - 1))], hi = vals[Math.floor(0.99 * (vals.length - 1))];
  return [(lo + hi) / 2, hi > lo ? hi - lo : 1];
}

function rangeWindow() {
  const [mn, mx] = scaledRange(S.image);
  return [(mn + mx) / 2, mx > mn ? mx - mn : 1];
}

function applyPreset(name) {
  if (PRESETS[name]) setWindow(PRESETS[name][0], PRESETS[name][1], name);
  else if (name === 'auto') setWindow(...autoWindow(), name);
  else if (name === 'range') setWindow(...rangeWindow(), name);
  else setWindow(S.wc, S.ww, 'custom');
}

// CT (values in Hounsfield units: below -500 and above 100) opens with soft tissue, anything
// else (MR, normalised data) with auto, once the axial slice is there (the value range until then).
function defaultPreset() {
  const [mn, mx] = scaledRange(S.image);
  return mn < -500 && mx > 100 ? 'soft' : 'auto';
}

// ---- hover -------------------------------------------------------------------

function hover(v, ev) {
  const img = S.image;
  if (!img || !v.rowIdx) return;
  const rect = v.canvas.getBoundingClientRect();
  const x = Math.floor(((ev.clientX - rect.left) * v.canvas.width) / rect.width);
  const u = Math.floor(((ev.clientY - rect.top) * v.canvas.height) / rect.height);
  if (x < 0 || u < 0 || x >= v.canvas.width || u >= v.canvas.height) return;
  const vox = { z: 0, y: 0, x: 0 };
  vox[v.axis] = v.index;
  vox[rowAxis(v.axis)] = v.rowIdx[u];
  vox[colAxis(v.axis)] = v.colIdx[x];
  const el = $('hover');
  const nchan = lead(img) ? img.shape[lead(img) - 1] : 1;
  const lines = [];
  lines.push(`voxel ${nchan > 1 ? `c ${S.channel}  ` : ''}z ${vox.z}  y ${vox.y}  x ${vox.x}`);
  let world = '';
  if (img.affine) {
    const A = img.affine, p = [vox.x, vox.y, vox.z];
    const w = [0, 1, 2].map((i) => A[4 * i] * p[0] + A[4 * i + 1] * p[1] + A[4 * i + 2] * p[2] + A[4 * i + 3]);
    world = w.map((t) => t.toFixed(2)).join(',');
    lines.push(`world ${w.map((t) => t.toFixed(2)).join(', ')} mm (x, y, z RAS)`);
  } else lines.push('world: no affine in this store');
  // the value at full resolution when it is there, else from the level drawn
  const value = (info, chn) => {
    const b = bestSlice(info, v);
    if (!b) return null;
    const k = (a) => AXES.indexOf(a);
    const rr = Math.min(b.lv.shape[k(rowAxis(v.axis))] - 1, Math.floor(vox[rowAxis(v.axis)] / b.lv.factor[k(rowAxis(v.axis))]));
    const cc = Math.min(b.lv.shape[k(colAxis(v.axis))] - 1, Math.floor(vox[colAxis(v.axis)] / b.lv.factor[k(colAxis(v.axis))]));
    return { raw: b.slice.data[rr * b.slice.cols + cc], level: b.lv.level, chn };
  };
  const iv = value(img, S.channel);
  let valueText = '', labelText = '';
  if (iv) {
    const val = img.labels ? iv.raw : img.scaling ? iv.raw * img.scaling.slope + img.scaling.inter : iv.raw;
    valueText = fmt(val);
    lines.push(`value ${valueText}${iv.level ? `  (level ${iv.level})` : ''}`);
  }
  const lab = S.overlay ? value(S.overlay, 0) : img.labels ? iv : null;
  if (lab) {
    labelText = fmt(lab.raw);
    lines.push(`label ${labelText}${lab.level ? `  (level ${lab.level})` : ''}`);
  }
  el.textContent = lines.join('\n');
  el.dataset.voxel = `${S.channel},${vox.z},${vox.y},${vox.x}`; // always (c, z, y, x)
  el.dataset.world = world;
  el.dataset.value = valueText;
  el.dataset.label = labelText;
  for (const item of $('legend').children) item.classList.toggle('on', item.dataset.value === labelText);
}

// ---- legend ------------------------------------------------------------------

function legend() {
  const box = $('legend');
  box.textContent = '';
  const info = S.overlay || (S.image && S.image.labels ? S.image : null);
  if (!info) { box.textContent = 'No label array shown.'; return; }
  const labels = info.labels.filter(([v]) => v !== 0);
  const MAX = 300;
  for (const [value, voxels] of labels.slice(0, MAX)) {
    const item = document.createElement('div');
    item.className = 'item';
    item.dataset.value = String(value);
    const sw = document.createElement('span');
    sw.className = 'swatch';
    const [r, g, b] = labelRGB(value);
    sw.style.background = `rgb(${r},${g},${b})`;
    const name = document.createElement('span');
    name.textContent = String(value);
    const count = document.createElement('span');
    count.className = 'count';
    count.textContent = `${voxels.toLocaleString('en')} vox`;
    item.append(sw, name, count);
    box.append(item);
  }
  if (labels.length > MAX) box.append(`... and ${labels.length - MAX} more`);
  if (!labels.length) box.textContent = 'This label array is all 0.';
}

// ---- loading -----------------------------------------------------------------

function sameGrid(a, b) {
  const sa = a.shape.slice(lead(a)), sb = b.shape.slice(lead(b));
  return sa.every((n, i) => n === sb[i]) && b.shape.slice(0, lead(b)).every((n) => n === 1);
}

function fillSelect(sel, items, value) {
  sel.textContent = '';
  for (const [val, text] of items) {
    const o = document.createElement('option');
    o.value = val;
    o.textContent = text;
    sel.append(o);
  }
  sel.value = value;
}

async function loadStore(id) {
  const gen = ++S.gen;
  S.store = id;
  S.ready = false;
  delete document.body.dataset.ready;
  status('loading ...');
  const st = S.stores[id];
  const names = st.arrays.filter((n) => !/@\d+$/.test(n));
  const infos = await Promise.all(names.map((n) => getJSON(`/api/array?store=${id}&array=${encodeURIComponent(n)}`)));
  if (gen !== S.gen) return;
  S.arrays = new Map();
  for (const info of infos) if (info.ndim >= 3) { info.lv = levelsOf(info); S.arrays.set(info.name, info); }
  if (!S.arrays.size) { status(`${st.name}: no array of 3 or more dimensions to show`); return; }
  const list = [...S.arrays.values()];
  const image = S.arrays.get('image') || list.find((a) => !a.labels) || list[0];
  fillSelect($('image'), list.map((a) => [a.name, `${a.name}  ${a.dtype} ${a.shape.join('x')}`]), image.name);
  const overlay = S.arrays.get('seg') && S.arrays.get('seg') !== image && sameGrid(image, S.arrays.get('seg'))
    ? S.arrays.get('seg') : list.find((a) => a.labels && a !== image && sameGrid(image, a)) || null;
  setArrays(image, overlay);
  status('');
}

function setArrays(image, overlay) {
  S.gen++;
  S.image = image;
  S.overlay = overlay;
  S.ready = false;
  delete document.body.dataset.ready;
  const labels = [...S.arrays.values()].filter((a) => a.labels && a !== image && sameGrid(image, a));
  fillSelect($('overlay'), [['', 'none'], ...labels.map((a) => [a.name, a.name])], overlay ? overlay.name : '');
  const nchan = lead(image) ? image.shape[lead(image) - 1] : 1;
  $('chanbox').hidden = nchan <= 1;
  $('channel').max = nchan - 1;
  S.channel = Math.min(S.channel, nchan - 1);
  $('channel').value = S.channel;
  for (const el of [$('preset'), $('wc'), $('ww')]) el.disabled = !!image.labels;
  layout();
  for (const a of AXES) {
    const v = S.views[a];
    v.index = Math.floor(nAxis(image, a) / 2);
  }
  legend();
  drawCrossAll();
  const preset = defaultPreset();
  if (preset === 'auto') {
    setWindow(...rangeWindow(), 'auto');
    S.autoPending = true;
  } else setWindow(PRESETS[preset][0], PRESETS[preset][1], preset);
  for (const a of AXES) request(S.views[a]);
}

// ---- events ------------------------------------------------------------------

function setActive(a) {
  S.active = a;
  for (const b of AXES) S.views[b].canvas.classList.toggle('active', a === b);
}

function attach(v) {
  const cv = v.canvas;
  let drag = null;
  cv.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    setActive(v.axis);
    let step;
    if (ev.deltaMode !== 0 || Math.abs(ev.deltaY) >= 50) step = Math.sign(ev.deltaY);
    else {
      v.wheel = (v.wheel || 0) + ev.deltaY;
      step = Math.trunc(v.wheel / 100);
      v.wheel -= step * 100;
    }
    if (step) setIndex(v, v.index - step); // wheel up: next slice, wheel down: previous
  }, { passive: false });
  cv.addEventListener('mouseenter', () => setActive(v.axis));
  cv.addEventListener('mousemove', (ev) => hover(v, ev));
  // a drag changes the window (right: 2x wider per 100 px; down: centre lower by a quarter width
  // per 64 px, so the picture gets brighter), also when the mouse leaves the canvas
  window.addEventListener('mousemove', (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
    if (drag.moved && !S.image.labels) setWindow(drag.wc - (dy * drag.ww) / 256, drag.ww * 2 ** (dx / 100), 'custom');
  });
  cv.addEventListener('mousedown', (ev) => {
    if (ev.button !== 0) return;
    ev.preventDefault();
    cv.focus();
    setActive(v.axis);
    drag = { x: ev.clientX, y: ev.clientY, wc: S.wc, ww: S.ww, moved: false };
  });
  window.addEventListener('mouseup', (ev) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    if (d.moved) return;
    // a click: the other two views go to the voxel clicked
    const rect = cv.getBoundingClientRect();
    const x = Math.floor(((ev.clientX - rect.left) * cv.width) / rect.width);
    const u = Math.floor(((ev.clientY - rect.top) * cv.height) / rect.height);
    if (x < 0 || u < 0 || x >= cv.width || u >= cv.height) return;
    setIndex(S.views[rowAxis(v.axis)], v.rowIdx[u]);
    setIndex(S.views[colAxis(v.axis)], v.colIdx[x]);
  });
}

function onKey(ev) {
  if (!S.image || ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement) return;
  const v = S.views[S.active];
  const steps = { ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1, PageUp: 10, PageDown: -10 };
  if (ev.key in steps) setIndex(v, v.index + steps[ev.key]);
  else if (ev.key === 'Home') setIndex(v, 0);
  else if (ev.key === 'End') setIndex(v, nAxis(S.image, v.axis) - 1);
  else return;
  ev.preventDefault();
}

async function main() {
  for (const a of AXES) {
    S.views[a] = { axis: a, index: 0, canvas: $(`view-${a}`), cross: $(`cross-${a}`), rowIdx: null, colIdx: null,
      abort: null };
    attach(S.views[a]);
  }
  document.addEventListener('keydown', onKey);
  $('case').addEventListener('change', (e) => loadStore(Number(e.target.value)).catch((err) => status(err.message)));
  $('image').addEventListener('change', (e) => {
    const img = S.arrays.get(e.target.value);
    const ov = S.overlay && S.overlay !== img && sameGrid(img, S.overlay) ? S.overlay : null;
    setArrays(img, ov);
  });
  $('overlay').addEventListener('change', (e) => {
    S.overlay = e.target.value ? S.arrays.get(e.target.value) : null;
    S.gen++;
    legend();
    for (const a of AXES) request(S.views[a]);
  });
  $('channel').addEventListener('change', (e) => {
    const n = lead(S.image) ? S.image.shape[lead(S.image) - 1] : 1;
    const c = Math.max(0, Math.min(n - 1, Math.trunc(Number(e.target.value)) || 0));
    e.target.value = c;
    S.channel = c;
    S.gen++;
    for (const a of AXES) request(S.views[a]);
  });
  $('preset').addEventListener('change', (e) => applyPreset(e.target.value));
  for (const id of ['wc', 'ww']) {
    $(id).addEventListener('change', () => {
      const wc = Number($('wc').value), ww = Number($('ww').value);
      if (Number.isFinite(wc) && Number.isFinite(ww) && ww > 0) setWindow(wc, ww, 'custom');
      else setWindow(S.wc, S.ww, S.preset);
    });
  }
  $('alpha').addEventListener('input', (e) => { S.alpha = Number(e.target.value); drawAll(); });
  $('grid').addEventListener('change', (e) => { S.grid = e.target.checked; drawAll(); });
  $('cross').addEventListener('change', (e) => { S.cross = e.target.checked; drawCrossAll(); });
  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { layout(); drawAll(); drawCrossAll(); }, 100);
  });
  S.alpha = Number($('alpha').value);
  S.grid = $('grid').checked;
  S.cross = $('cross').checked;
  const r = await getJSON('/api/stores');
  S.stores = r.stores;
  fillSelect($('case'), r.stores.map((s) => [String(s.id), s.name]), '0');
  $('casebox').hidden = r.stores.length < 2;
  document.title = `voxtile view: ${r.stores.map((s) => s.name).join(', ')}`;
  await loadStore(0);
}

main().catch((e) => status(e.message));
