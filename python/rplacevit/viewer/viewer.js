// rplacevit view: the page. No framework, no build step, nothing fetched but this server's API.
//
// The view is (t, x, y, z): the moment (ms), the canvas pixel at the centre of the screen, and
// the zoom (screen pixels per canvas pixel); the URL's hash holds it (#t=ISO&x=&y=&z=), so a
// view can be shared. Each layer (the canvas, the forecast, the heat, the predicted "changes
// soon") fetches the PNG of the visible region for the view, one request at a time, and asks
// again when the view moved meanwhile: scrubbing shows frames as fast as the server answers, and
// never queues.
"use strict";

const $ = (id) => document.getElementById(id);
const MIN_ZOOM = 1 / 16, MAX_ZOOM = 64;
const REGION_STEP = 64; // the fetched region is the visible one rounded out to this grid

const viewer = {
  info: null,
  state: { t: 0, x: 0, y: 0, z: 1 },
  layers: {},
  selected: null, // {x, y} of the clicked pixel
  user: null, // {id, placements: [[x, y, t, color], ...]}
  frames: [], // times (performance.now()) of the last canvas frames drawn, for the status line
  frameCount: 0, // canvas frames drawn since the page opened
  playing: false,
  // While the forecast is on: the moment shown when it was turned on (from), and one horizon
  // later (to). From `from` up to `to` the canvas area shows the models' canvas for `to`; at
  // `to` and after, and before `from`, the real one, to compare.
  forecast: null, // {from, to, placements: the X-Forecast-Placements header}
};
window.viewer = viewer;

// Time ------------------------------------------------------------------------------------

function parseTime(text) {
  text = text.trim();
  if (/^-?\d+$/.test(text)) return Number(text);
  // ISO 8601 as the command line takes it: "T" or a space between date and time, the time
  // cut after its hours or minutes, and no zone meaning UTC (never the browser's local time).
  const m = /^(\d{4}-\d\d-\d\d)(?:[T ](\d\d)(?::(\d\d)(?::(\d\d(?:\.\d+)?))?)?)?\s*(Z|[+-]\d\d:?\d\d)?$/i.exec(text);
  if (!m) return null;
  const [, date, h = "00", min = "00", sec = "00", zone = "Z"] = m;
  const offset = zone.toUpperCase() === "Z" ? "Z" : zone.replace(/^([+-]\d\d)(\d\d)$/, "$1:$2");
  const ms = Date.parse(`${date}T${h}:${min}:${sec.padStart(2, "0")}${offset}`);
  return Number.isNaN(ms) ? null : ms;
}
viewer.parseTime = parseTime;

function isoTime(ms) {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

function duration(ms) {
  if (ms === null) return "until now";
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}

// Geometry --------------------------------------------------------------------------------

const view = $("view");
const ctx = view.getContext("2d");

// Screen position of canvas pixel (0, 0), whole screen pixels: at integer zooms every canvas
// pixel covers exactly z×z screen pixels.
function origin() {
  const { x, y, z } = viewer.state;
  return { ox: Math.round(view.width / 2 - x * z), oy: Math.round(view.height / 2 - y * z) };
}
viewer.origin = origin;

function toCanvas(sx, sy) {
  const { ox, oy } = origin();
  const z = viewer.state.z;
  return { x: Math.floor((sx - ox) / z), y: Math.floor((sy - oy) / z) };
}

// The visible part of the canvas, rounded out to REGION_STEP, clipped to the canvas (null: none).
function visibleRegion() {
  const { width, height } = viewer.info;
  const { ox, oy } = origin();
  const z = viewer.state.z;
  const round = (v, f) => f(v / REGION_STEP) * REGION_STEP;
  const x0 = Math.max(0, round((0 - ox) / z, Math.floor)), y0 = Math.max(0, round((0 - oy) / z, Math.floor));
  const x1 = Math.min(width, round((view.width - ox) / z, Math.ceil)), y1 = Math.min(height, round((view.height - oy) / z, Math.ceil));
  return x0 < x1 && y0 < y1 ? [x0, y0, x1, y1] : null;
}

// Layers ----------------------------------------------------------------------------------

// A layer: want() → {key, url, region} for the current view (null: nothing to show), and
// make(blob, response) → what draw() paints. One request in flight per layer.
function layer(name, want, make) {
  viewer.layers[name] = { name, want, make, key: null, pending: null, image: null, region: null, error: null };
}

function colorize(bitmap, ramp) {
  // Grey levels → RGBA through ramp(v) → [r, g, b, a], on a canvas of the bitmap's size.
  const c = document.createElement("canvas");
  c.width = bitmap.width;
  c.height = bitmap.height;
  const g = c.getContext("2d", { willReadFrequently: true });
  g.drawImage(bitmap, 0, 0);
  const pixels = g.getImageData(0, 0, c.width, c.height);
  const d = pixels.data;
  const table = Array.from({ length: 256 }, (_, v) => ramp(v));
  for (let i = 0; i < d.length; i += 4) {
    const [r, gr, b, a] = table[d[i]];
    d[i] = r; d[i + 1] = gr; d[i + 2] = b; d[i + 3] = a;
  }
  g.putImageData(pixels, 0, 0);
  return c;
}

layer("canvas", () => {
  const region = visibleRegion();
  if (!region) return null;
  const q = `t=${viewer.state.t}&region=${region.join(",")}`;
  return { key: q, url: `/api/canvas.png?${q}`, region };
}, (bitmap) => bitmap);

// Drawn over the canvas layer, under the overlays: the forecast replaces the canvas where it lies.
layer("forecast", () => {
  const f = viewer.forecast, t = viewer.state.t;
  if (!f || t < f.from || t >= f.to) return null;
  const region = visibleRegion();
  if (!region) return null;
  const [x0, y0, x1, y1] = region;
  if ((x1 - x0) * (y1 - y0) > viewer.info.limits.predict_pixels) return { key: "too-big", tooBig: true };
  const q = `t=${f.from}&region=${region.join(",")}`;
  return { key: q, url: `/api/forecast.png?${q}`, region };
}, (bitmap, response) => {
  if (viewer.forecast) viewer.forecast.placements = response.headers.get("X-Forecast-Placements");
  return bitmap;
});

layer("heat", () => {
  if (!$("heat").checked) return null;
  const region = visibleRegion();
  if (!region) return null;
  const span = Number($("heat-span").value), t = viewer.state.t;
  const q = `t0=${t - span + 1}&t1=${t + 1}&region=${region.join(",")}`;
  return { key: q, url: `/api/heat.png?${q}`, region };
}, (bitmap, response) => {
  // Counts (capped at 255) on a log scale up to the largest count: yellow to red, more opaque.
  const top = Math.log1p(Math.max(1, Math.min(255, Number(response.headers.get("X-Heat-Max")) || 1)));
  return colorize(bitmap, (v) => {
    if (v === 0) return [0, 0, 0, 0];
    const f = Math.min(1, Math.log1p(v) / top);
    return [255, Math.round(230 * (1 - f)), 0, Math.round(90 + 150 * f)];
  });
});

layer("soon", () => {
  if (!viewer.info.models.time || !$("soon").checked) return null;
  let region = visibleRegion();
  if (!region) return null;
  const [x0, y0, x1, y1] = region;
  if ((x1 - x0) * (y1 - y0) > viewer.info.limits.predict_pixels) return { key: "too-big", tooBig: true };
  const q = `t=${viewer.state.t}&region=${region.join(",")}`;
  return { key: q, url: `/api/predict.png?${q}`, region };
}, (bitmap) => colorize(bitmap, (v) => [255, 0, 200, Math.round(v * 0.85)]));

async function fetchLayer(l, wanted) {
  l.pending = wanted.key;
  try {
    const response = await fetch(wanted.url);
    if (!response.ok) throw new Error((await response.json()).error || response.statusText);
    const bitmap = await createImageBitmap(await response.blob());
    const now = l.want();
    if (now === null || now.tooBig) {
      // The layer was turned off (or the view grew too big for it) meanwhile: keep nothing.
      l.pending = null;
      refresh();
      return;
    }
    // A reply for a view that has moved on meanwhile is still drawn (at its own region), then
    // the current view is asked for: while the slider is scrubbed faster than the server
    // answers, every reply is late, and dropping them would show no frame at all.
    l.image = l.make(bitmap, response);
    l.region = wanted.region;
    l.error = null;
    if (l.name === "canvas") {
      viewer.frames.push(performance.now());
      viewer.frameCount += 1;
    }
  } catch (error) {
    l.image = null;
    l.error = String(error.message || error);
  }
  l.key = wanted.key;
  l.pending = null;
  draw();
  refresh();
}

// Starts the requests the view needs; called after every change of the view.
function refresh() {
  if (!viewer.info) return;
  let dropped = false;
  for (const l of Object.values(viewer.layers)) {
    const wanted = l.want();
    if (wanted === null || wanted.tooBig) {
      dropped = dropped || l.image !== null;
      l.image = null;
      l.key = wanted === null ? null : wanted.key;
      l.error = wanted === null ? null : "zoom in to see the predictions";
      continue;
    }
    if (l.pending === null && l.key !== wanted.key) fetchLayer(l, wanted);
  }
  if (dropped) draw();
  status();
}

// True when every layer shows the current view: what a test waits for.
viewer.idle = () => Object.values(viewer.layers).every((l) => {
  const wanted = l.want();
  return l.pending === null && (wanted === null || l.key === wanted.key);
});

function draw() {
  ctx.fillStyle = "#111";
  ctx.fillRect(0, 0, view.width, view.height);
  if (!viewer.info) return;
  ctx.imageSmoothingEnabled = false;
  const { ox, oy } = origin();
  const z = viewer.state.z;
  for (const l of Object.values(viewer.layers)) {
    if (!l.image || !l.region) continue;
    const [x0, y0, x1, y1] = l.region;
    ctx.drawImage(l.image, ox + x0 * z, oy + y0 * z, (x1 - x0) * z, (y1 - y0) * z);
  }
  if (viewer.user) {
    // The user's placements: up to the moment shown in cyan, later ones dimmed.
    const size = Math.max(z, 3), t = viewer.state.t;
    ctx.lineWidth = 1;
    for (const [x, y, when] of viewer.user.placements) {
      ctx.strokeStyle = when <= t ? "#00e5ff" : "rgba(0, 229, 255, 0.3)";
      ctx.strokeRect(ox + x * z + z / 2 - size / 2 - 0.5, oy + y * z + z / 2 - size / 2 - 0.5, size + 1, size + 1);
    }
  }
  if (viewer.selected) {
    const { x, y } = viewer.selected;
    ctx.strokeStyle = "#ff0";
    ctx.lineWidth = 2;
    ctx.strokeRect(ox + x * z - 2, oy + y * z - 2, z + 4, z + 4);
  }
  forecastNote();
}

// What the canvas area shows while the forecast is on: the label, and a frame round the view
// while the forecast is drawn (a CSS outline: the view's own pixels stay the images').
function forecastNote() {
  const f = viewer.forecast;
  $("forecast-note").hidden = !f;
  view.classList.toggle("forecast", !!(f && viewer.layers.forecast.image));
  if (!f) return;
  const t = viewer.state.t, shown = t >= f.from && t < f.to;
  const count = f.placements === null ? "" : ` from ${isoTime(f.from)}, ${parseInt(f.placements, 10).toLocaleString()} placements`
    + (f.placements.includes("counted=previous") ? " (as many as the events before it: the data ends sooner)" : "");
  const reachable = f.to <= viewer.info.last_ms;
  $("forecast-text").textContent = shown
    ? `forecast for ${isoTime(f.to)}${count}${reachable ? "" : "; no real canvas then: the data ends before"}`
    : `real canvas; the forecast from ${isoTime(f.from)} is for ${isoTime(f.to)}`;
  $("forecast-flip").disabled = !reachable;
}

function status() {
  const now = performance.now();
  viewer.frames = viewer.frames.filter((f) => now - f < 2000);
  const fps = viewer.frames.length / 2;
  const errors = Object.values(viewer.layers).filter((l) => l.error).map((l) => `${l.name}: ${l.error}`);
  const z = viewer.state.z;
  $("status").textContent = `${z >= 1 ? z.toFixed(z % 1 ? 2 : 0) : "1/" + (1 / z).toFixed(0)}×  ${fps ? fps.toFixed(1) + " fps" : ""}`
    + (errors.length ? "  " + errors.join("; ") : "");
}
setInterval(status, 1000);

// The view and the URL ---------------------------------------------------------------------

let urlTimer = null;

function setView(changes, { fromSlider = false } = {}) {
  const s = viewer.state, info = viewer.info;
  Object.assign(s, changes);
  s.t = Math.round(Math.min(Math.max(s.t, info.first_ms), info.last_ms));
  s.z = Math.min(Math.max(s.z, MIN_ZOOM), MAX_ZOOM);
  s.x = Math.min(Math.max(s.x, 0), info.width);
  s.y = Math.min(Math.max(s.y, 0), info.height);
  if (!fromSlider) $("slider").value = s.t;
  if (document.activeElement !== $("time")) $("time").value = isoTime(s.t);
  $("time").classList.remove("bad");
  clearTimeout(urlTimer);
  urlTimer = setTimeout(() => history.replaceState(null, "", "#" + hashOf(s)), 200);
  draw();
  refresh();
}

function hashOf(s) {
  return `t=${isoTime(s.t)}&x=${+s.x.toFixed(2)}&y=${+s.y.toFixed(2)}&z=${+s.z.toFixed(4)}`;
}

function fromHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const out = {};
  if (p.has("t")) { const t = parseTime(p.get("t")); if (t !== null) out.t = t; }
  for (const k of ["x", "y", "z"]) if (p.has(k) && Number.isFinite(Number(p.get(k)))) out[k] = Number(p.get(k));
  return out;
}

// The view of where there is something to see: the bounding box of every event.
function fit() {
  const [x0, y0, x1, y1] = viewer.info.bounds;
  const z = Math.min(view.width / (x1 - x0), view.height / (y1 - y0));
  // A whole zoom when the box fits at least once, so that pixels stay square blocks.
  return { x: (x0 + x1) / 2, y: (y0 + y1) / 2, z: z >= 1 ? Math.floor(z) : 1 / Math.ceil(1 / z) };
}

function zoomAt(factor, sx, sy) {
  const s = viewer.state;
  const z = Math.min(Math.max(s.z * factor, MIN_ZOOM), MAX_ZOOM);
  // Keep the canvas point under (sx, sy) where it is.
  const { ox, oy } = origin();
  const cx = (sx - ox) / s.z, cy = (sy - oy) / s.z;
  setView({ z, x: cx - (sx - view.width / 2) / z, y: cy - (sy - view.height / 2) / z });
}

function resize() {
  view.width = view.clientWidth;
  view.height = view.clientHeight;
  draw();
  refresh();
}

// Controls --------------------------------------------------------------------------------

$("slider").addEventListener("input", () => setView({ t: Number($("slider").value) }, { fromSlider: true }));
$("time").addEventListener("change", () => {
  const t = parseTime($("time").value);
  if (t === null) $("time").classList.add("bad");
  else setView({ t });
});
$("zoom-in").addEventListener("click", () => zoomAt(2, view.width / 2, view.height / 2));
$("zoom-out").addEventListener("click", () => zoomAt(0.5, view.width / 2, view.height / 2));
$("fit").addEventListener("click", () => setView(fit()));
for (const id of ["heat", "heat-span", "soon"]) $(id).addEventListener("change", () => { draw(); refresh(); });
$("forecast").addEventListener("change", () => {
  const t = viewer.state.t;
  viewer.forecast = $("forecast").checked ? { from: t, to: t + viewer.info.forecast.horizon_ms, placements: null } : null;
  draw();
  refresh();
});
// The forecast's start (the forecast) or its moment (the real canvas), whichever is not shown.
$("forecast-flip").addEventListener("click", () => {
  const f = viewer.forecast;
  if (f) setView({ t: viewer.state.t === f.to ? f.from : f.to });
});
view.addEventListener("wheel", (e) => {
  e.preventDefault();
  const rect = view.getBoundingClientRect();
  zoomAt(Math.pow(2, -e.deltaY / 300), e.clientX - rect.left, e.clientY - rect.top);
}, { passive: false });

let drag = null;
view.addEventListener("pointerdown", (e) => {
  drag = { sx: e.clientX, sy: e.clientY, x: viewer.state.x, y: viewer.state.y, moved: false };
  view.setPointerCapture(e.pointerId);
});
view.addEventListener("pointermove", (e) => {
  if (!drag) return;
  const dx = e.clientX - drag.sx, dy = e.clientY - drag.sy;
  if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; view.classList.add("dragging"); }
  if (drag.moved) setView({ x: drag.x - dx / viewer.state.z, y: drag.y - dy / viewer.state.z });
});
view.addEventListener("pointercancel", () => {
  drag = null;
  view.classList.remove("dragging");
});
view.addEventListener("pointerup", (e) => {
  const click = drag && !drag.moved;
  drag = null;
  view.classList.remove("dragging");
  if (!click) return;
  const rect = view.getBoundingClientRect();
  const { x, y } = toCanvas(e.clientX - rect.left, e.clientY - rect.top);
  if (x >= 0 && y >= 0 && x < viewer.info.width && y < viewer.info.height) selectPixel(x, y);
});

$("play").addEventListener("click", () => setPlaying(!viewer.playing));
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" && e.target.type === "text") return;
  if (e.key === " ") { e.preventDefault(); setPlaying(!viewer.playing); }
  else if (e.key === "+" || e.key === "=") zoomAt(2, view.width / 2, view.height / 2);
  else if (e.key === "-") zoomAt(0.5, view.width / 2, view.height / 2);
  else if (e.key === "0") setView(fit());
});

function setPlaying(on) {
  viewer.playing = on;
  $("play").textContent = on ? "❚❚" : "▶";
  if (on && viewer.state.t >= viewer.info.last_ms) setView({ t: viewer.info.first_ms });
  let last = performance.now();
  const step = (now) => {
    if (!viewer.playing) return;
    const t = viewer.state.t + ((now - last) / 1000) * Number($("speed").value);
    last = now;
    setView({ t });
    if (viewer.state.t >= viewer.info.last_ms) setPlaying(false);
    else requestAnimationFrame(step);
  };
  if (on) requestAnimationFrame(step);
}

// The panel: a pixel's history, the models' guesses, a user ---------------------------------

function swatch(hex) {
  return `<span class="swatch" style="background:${hex}"></span>`;
}

async function getJSON(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// Each click asks again; a reply for an earlier click is dropped.
let panelRequest = 0;

async function selectPixel(x, y, page = null) {
  const request = ++panelRequest;
  viewer.selected = { x, y };
  $("panel").hidden = false;
  draw();
  const t = viewer.state.t;
  const q = `x=${x}&y=${y}&t=${t}` + (page === null ? "" : `&page=${page}`);
  const section = $("pixel");
  try {
    const p = await getJSON(`/api/pixel?${q}`);
    if (request !== panelRequest) return;
    const [ox, oy] = viewer.info.canvas_origin;
    const official = ox || oy ? ` (official ${x + ox}, ${y + oy})` : "";
    const rows = p.events.map((e, i) => {
      const current = p.current === p.page * p.page_size + i ? " class=\"current\"" : "";
      return `<tr data-id="${e.id}" data-t="${e.t}" data-color="${e.color}" data-user="${e.user}"${current}>`
        + `<td>${e.time.replace("T", " ").replace("Z", "")}</td><td>${swatch(e.hex)}${e.color}</td>`
        + `<td><a class="user" data-user="${e.user}">${e.user}</a></td><td>${duration(e.lasted_ms)}</td></tr>`;
    }).join("");
    const pager = p.pages > 1
      ? `<div class="pager"><button data-page="${p.page - 1}" ${p.page === 0 ? "disabled" : ""}>‹</button> page ${p.page + 1} of ${p.pages}`
        + ` <button data-page="${p.page + 1}" ${p.page + 1 >= p.pages ? "disabled" : ""}>›</button></div>` : "";
    section.innerHTML = `<h2>Pixel ${x}, ${y}${official}</h2><p class="note">${p.total.toLocaleString()} event(s); the highlighted one is in place at the moment shown</p>`
      + pager + `<table id="history"><tr><th>time (UTC)</th><th>color</th><th>user</th><th>lasted</th></tr>${rows}</table>`;
    section.querySelectorAll(".pager button").forEach((b) => b.addEventListener("click", () => selectPixel(x, y, Number(b.dataset.page))));
    section.querySelectorAll("a.user").forEach((a) => a.addEventListener("click", () => selectUser(a.dataset.user)));
  } catch (error) {
    if (request !== panelRequest) return;
    section.innerHTML = `<p class="error">${error.message}</p>`;
  }
  predictPixel(x, y, t, request);
}

async function predictPixel(x, y, t, request) {
  const section = $("predict");
  const models = viewer.info.models;
  if (!models.color && !models.time) { section.innerHTML = ""; return; }
  try {
    const p = await getJSON(`/api/predict?x=${x}&y=${y}&t=${t}`);
    if (request !== panelRequest) return;
    let html = "<h2>What the models expect</h2>";
    if (p.colors) {
      html += `<table id="top-colors"><tr><th>color model</th><th>p</th></tr>`
        + p.colors.map((c) => `<tr data-color="${c.color}"><td>${swatch(c.hex)}${c.color}</td><td>${(100 * c.p).toFixed(1)} %</td></tr>`).join("")
        + "</table>";
    }
    if (p.time) {
      const tm = p.time;
      const within = tm.horizon_ms === null ? "its horizon" : duration(tm.horizon_ms);
      html += tm.p_change !== null
        ? `<p>time model: changes within ${within} with p = ${(100 * tm.p_change).toFixed(1)} %</p>`
        : `<p>time model: next change in ${tm.ms === null ? (100 * tm.score).toFixed(1) + " % of its horizon" : duration(tm.ms)}</p>`;
    }
    html += p.next
      ? `<p id="next" data-color="${p.next.color}">really next: ${swatch(p.next.hex)}${p.next.color} by user ${p.next.user}, ${duration(p.next.t - t)} later</p>`
      : `<p id="next">really next: nothing, the pixel never changes again</p>`;
    section.innerHTML = html;
  } catch (error) {
    if (request === panelRequest) section.innerHTML = `<p class="error">${error.message}</p>`;
  }
}

async function selectUser(id) {
  const section = $("user");
  try {
    const u = await getJSON(`/api/user?id=${encodeURIComponent(id)}`);
    viewer.user = u;
    section.innerHTML = `<h2>User ${u.id}</h2><p>${u.count.toLocaleString()} placement(s), ${u.survived.toLocaleString()} lasted 5 minutes;`
      + ` ${u.first || ""} → ${u.last || ""}${u.truncated ? `; the first ${u.placements.length.toLocaleString()} are outlined` : ""}</p>`
      + `<p class="note">outlined on the canvas: cyan up to the moment shown, faint after</p><button id="clear-user">clear</button>`;
    $("clear-user").addEventListener("click", () => { viewer.user = null; section.innerHTML = ""; draw(); });
  } catch (error) {
    section.innerHTML = `<p class="error">${error.message}</p>`;
  }
  draw();
}
viewer.selectUser = selectUser;

$("close").addEventListener("click", () => { $("panel").hidden = true; viewer.selected = null; draw(); resize(); });

// Start -----------------------------------------------------------------------------------

async function start() {
  viewer.info = await getJSON("/api/info");
  const info = viewer.info;
  document.title = `rplacevit view: r/place ${info.year}, ${info.events.toLocaleString()} events`;
  $("slider").min = info.first_ms;
  $("slider").max = info.last_ms;
  $("soon-label").hidden = !info.models.time;
  $("forecast-label").hidden = !info.forecast;
  $("forecast").checked = false; // a box the browser kept checked from before a reload has no start
  if (info.forecast) $("forecast-label").title += ` (${info.forecast.horizon_ms / 60000} min), for the visible region (zoom in when it `
    + "is too big), in place of the real one; move the slider to that moment (or ⇄) to see the real canvas; off and on again "
    + "forecasts from the moment shown then";
  resize();
  viewer.state = { t: info.last_ms, ...fit() };
  setView(fromHash());
  window.addEventListener("resize", resize);
  window.addEventListener("hashchange", () => setView(fromHash()));
  new ResizeObserver(resize).observe(view);
}

start().catch((error) => { $("status").textContent = `cannot start: ${error.message}`; });
