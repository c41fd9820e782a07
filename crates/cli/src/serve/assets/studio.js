// The studio page: uploads, options, live painting over Server-Sent Events,
// the loss chart, the queue, comparisons and the gallery. No dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const SERVER_KEYS = ["backend", "device", "threads", "weights"];
const SERIES = [
  ["content", "#5fb3f9"], ["style", "#e0a030"], ["tv", "#9be07c"], ["total", "#f0f0f0"],
];

let config = null;
let content = null;          // {id, name}
let styles = [];             // [{id, name}]
let initRef = null;          // {gallery: id} | null
let state = { running: null, queue: [], gallery: [], failed: [] };
let history = [];            // [[iteration, [content, style, tv, total]]] of the running job
let liveJob = null;

// ---------- helpers ----------
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}
function say(text, isError) {
  const m = $("message");
  m.textContent = text || "";
  m.className = "message" + (isError ? " error" : "");
}
function num(x) {
  if (x === null || x === undefined) return "–";
  if (x !== 0 && (Math.abs(x) >= 1e5 || Math.abs(x) < 1e-3)) return x.toExponential(2);
  return String(+x.toPrecision(4));
}
function secs(s) {
  if (!isFinite(s)) return "–";
  if (s < 60) return s.toFixed(1) + " s";
  return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
}
async function api(path, body, raw) {
  const opts = body === undefined ? {} : {
    method: "POST",
    body: raw ? body : JSON.stringify(body),
    headers: raw ? {} : { "Content-Type": "application/json" },
  };
  const r = await fetch(path, opts);
  const text = await r.text();
  let data = null;
  try { data = JSON.parse(text); } catch (_) { data = { error: text }; }
  if (!r.ok) throw new Error((data && data.error) || r.statusText);
  return data;
}

// ---------- uploads ----------
async function upload(blob, name) {
  return api("/api/uploads?name=" + encodeURIComponent(name), blob, true);
}
function thumb(u, onRemove) {
  const t = el("div", { class: "thumb", title: u.name + " (" + u.width + "×" + u.height + ")" },
    el("img", { src: "/api/uploads/" + u.id + "/thumb.png", alt: u.name }),
    el("span", {}, u.name));
  if (onRemove) t.append(el("button", { onclick: onRemove, title: "remove" }, "×"));
  return t;
}
function renderInputs() {
  $("content-thumbs").replaceChildren(...(content ? [thumb(content, () => { content = null; renderInputs(); })] : []));
  $("style-thumbs").replaceChildren(...styles.map((s, i) =>
    thumb(s, () => { styles.splice(i, 1); renderInputs(); })));
}
async function addFiles(kind, files) {
  for (const f of files) {
    try {
      say("uploading " + f.name + "…");
      const u = await upload(f, f.name);
      if (kind === "content") content = u; else styles.push(u);
      renderInputs();
      say("");
    } catch (e) { say(e.message, true); }
  }
}
function dropZone(zone, input, kind) {
  const z = $(zone);
  z.addEventListener("dragover", (e) => { e.preventDefault(); z.classList.add("over"); });
  z.addEventListener("dragleave", () => z.classList.remove("over"));
  z.addEventListener("drop", (e) => {
    e.preventDefault(); z.classList.remove("over");
    const files = [...e.dataTransfer.files];
    addFiles(kind, kind === "content" ? files.slice(0, 1) : files);
  });
  $(input).addEventListener("change", (e) => { addFiles(kind, [...e.target.files]); e.target.value = ""; });
}
async function useSample(s) {
  try {
    const blob = await (await fetch("/samples/" + s.name)).blob();
    const u = await upload(blob, s.name);
    if (s.kind === "content") content = u; else styles.push(u);
    renderInputs();
  } catch (e) { say(e.message, true); }
}

// ---------- options ----------
function setFields(o) {
  $("size").value = o["size"];
  $("iterations").value = o["iterations"];
  $("content-weight").value = o["content-weight"];
  $("style-weight").value = o["style-weight"];
  $("tv-weight").value = o["tv-weight"];
  $("optimizer").value = o["optimizer"];
  $("pooling").value = o["pooling"];
  $("init").value = ["content", "noise", "randn"].includes(o["init"]) ? o["init"] : "content";
  $("seed").value = o["seed"] ?? 0;
  $("original-colors").checked = !!o["original-colors"];
  syncSlider();
}
function syncSlider() {
  const c = +$("content-weight").value, s = +$("style-weight").value;
  if (c > 0 && s > 0) $("strength").value = Math.log10(s / c);
  $("strength-label").textContent = c > 0 ? "(style ÷ content = " + num(s / c) + ")" : "";
}
function fromSlider() {
  const c = +$("content-weight").value || 1;
  $("style-weight").value = +(c * Math.pow(10, +$("strength").value)).toPrecision(3);
  syncSlider();
}
function baseOptions() {
  const p = $("preset").value;
  return p ? config.presets[p] : config.defaults;
}
// The options sent: the preset's (or the defaults') that differ from the
// defaults, then the fields of the form.
function options() {
  const base = baseOptions(), d = config.defaults, o = {};
  for (const [k, v] of Object.entries(base)) {
    if (!SERVER_KEYS.includes(k) && JSON.stringify(v) !== JSON.stringify(d[k])) o[k] = v;
  }
  const n = (id) => { const v = $(id).value.trim(); return v === "" ? NaN : Number(v); };
  o["size"] = n("size");
  o["iterations"] = n("iterations");
  o["content-weight"] = n("content-weight");
  o["style-weight"] = n("style-weight");
  o["tv-weight"] = n("tv-weight");
  o["optimizer"] = $("optimizer").value;
  o["pooling"] = $("pooling").value;
  o["init"] = initRef ? "image" : $("init").value;
  o["seed"] = n("seed");
  o["original-colors"] = $("original-colors").checked;
  for (const k of Object.keys(o)) {
    if (typeof o[k] === "number" && !isFinite(o[k])) throw new Error(k + ": enter a number");
  }
  return o;
}
async function paint(strengths) {
  say("");
  try {
    if (!content) throw new Error("choose a content photo first");
    if (!styles.length) throw new Error("choose at least one style painting");
    const req = { content: content.id, styles: styles.map((s) => s.id), options: options() };
    if (initRef) req.init = initRef;
    if (strengths) req.strengths = strengths;
    const r = await api("/api/jobs", req);
    say(r.jobs.length > 1 ? "queued " + r.jobs.length + " jobs" : "queued");
  } catch (e) { say(e.message, true); }
}
function setInit(item) {
  initRef = item ? { gallery: item.id } : null;
  const chip = $("init-chip");
  chip.hidden = !item;
  $("init").disabled = !!item;
  if (item) {
    chip.replaceChildren("result #" + item.id + " ",
      el("button", { onclick: () => setInit(null), title: "start from the select's choice" }, "×"));
  }
}

// ---------- live view ----------
function drawChart() {
  const c = $("chart"), g = c.getContext("2d");
  const W = c.width, H = c.height, L = 52, R = 10, T = 22, B = 22;
  g.clearRect(0, 0, W, H);
  g.font = "11px system-ui, sans-serif";
  const pts = history.filter((h) => h[1].every((v) => v > 0 && isFinite(v)) || h[1][3] > 0);
  c.dataset.points = String(pts.length);
  if (!pts.length) return;
  let lo = Infinity, hi = -Infinity;
  for (const [, v] of pts) for (const x of v) if (x > 0) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
  let l0 = Math.floor(Math.log10(lo)), l1 = Math.ceil(Math.log10(hi));
  if (l1 === l0) l1 = l0 + 1;
  // The axis grows with the run (a long job's first iterations stay readable).
  const maxIt = Math.max(pts[pts.length - 1][0], Math.min(liveJob && liveJob.of || 10, 10));
  const x = (i) => L + (W - L - R) * (i / maxIt);
  const y = (v) => H - B - (H - T - B) * ((Math.log10(v) - l0) / (l1 - l0));
  g.strokeStyle = "#2e323c"; g.fillStyle = "#9aa0ab"; g.lineWidth = 1;
  const every = Math.ceil((l1 - l0) / 8);  // at most about eight labelled decades
  for (let e = l0; e <= l1; e++) {
    const yy = y(Math.pow(10, e));
    g.beginPath(); g.moveTo(L, yy); g.lineTo(W - R, yy); g.stroke();
    if ((e - l0) % every === 0) g.fillText("1e" + e, 6, yy + 4);
  }
  g.fillText("iteration " + pts[pts.length - 1][0], L, H - 6);
  SERIES.forEach(([name, colour], k) => {
    g.strokeStyle = colour; g.lineWidth = k === 3 ? 2 : 1.3;
    g.beginPath();
    let started = false;
    for (const [it, v] of pts) {
      if (!(v[k] > 0)) continue;
      if (!started) { g.moveTo(x(it), y(v[k])); started = true; } else g.lineTo(x(it), y(v[k]));
    }
    g.stroke();
    g.fillStyle = colour; g.fillText(name, L + 8 + k * 70, 14);
  });
}
function showProgress(p) {
  $("iteration").textContent = "iteration " + p.iteration + " / " + p.of;
  const rate = p.iteration / Math.max(p.elapsed, 1e-9);
  $("rate").textContent = rate.toFixed(2) + " it/s";
  $("eta").textContent = p.iteration < p.of ? "ETA " + secs((p.of - p.iteration) / rate) : "";
}
function showPreview(job, iteration) {
  const img = $("preview");
  img.src = "/api/jobs/" + job + "/preview.png?i=" + iteration;
  img.dataset.iteration = String(iteration);
  const tile = document.querySelector('#compare-view img[data-job="' + job + '"]');
  if (tile) tile.src = img.src;
}
$("preview") && $("preview").addEventListener("load", () => {
  const img = $("preview");
  img.dataset.changes = String(+img.dataset.changes + 1);
});

// ---------- state ----------
function renderQueue() {
  const items = [];
  const r = state.running;
  if (r) {
    items.push(el("li", { class: "running" }, "painting: " + r.label + (r.stopping ? " (stopping…)" : ""),
      el("button", { onclick: () => stop(r.id) }, "Stop")));
  }
  for (const q of state.queue) {
    items.push(el("li", {}, "#" + q.position + " waiting: " + q.label,
      el("button", { onclick: () => stop(q.id) }, "Cancel")));
  }
  if (!items.length) items.push(el("li", { class: "muted" }, "nothing queued"));
  $("queue").replaceChildren(...items);
  $("stop").disabled = !r || r.stopping;
  $("stop").dataset.job = r ? r.id : "";
}
function renderCompare() {
  const groups = [
    ...state.gallery.map((g) => g.group), ...state.queue.map((q) => q.group),
    state.running && state.running.group,
  ].filter((g) => g);
  const view = $("compare-view");
  if (!groups.length) { view.hidden = true; return; }
  const g = Math.max(...groups);
  const jobs = [
    ...state.gallery.filter((i) => i.group === g).map((i) => ({ id: i.job, strength: i.strength, src: "/api/gallery/" + i.id + "/thumb.png", note: i.stopped ? "stopped" : "done" })),
    ...(state.running && state.running.group === g ? [{ id: state.running.id, strength: state.running.strength, src: state.running.preview ? "/api/jobs/" + state.running.id + "/preview.png?i=" + state.running.preview : "", note: "painting" }] : []),
    ...state.queue.filter((q) => q.group === g).map((q) => ({ id: q.id, strength: q.strength, src: "", note: "waiting" })),
  ].sort((a, b) => a.strength - b.strength);
  view.hidden = false;
  view.replaceChildren(...jobs.map((j) => {
    const img = el("img", { "data-job": j.id, alt: "strength " + j.strength });
    if (j.src) img.src = j.src;
    return el("figure", {}, img, el("figcaption", {}, "strength " + num(j.strength) + " · " + j.note));
  }));
}
function renderGallery() {
  const cards = state.gallery.slice().reverse().map((i) => {
    const facts = i.width + "×" + i.height + " · " + i.iterations + " it" +
      (i.stopped ? " (stopped)" : "") + " · loss " + num(i.best_loss) + " · " + secs(i.elapsed);
    const nondefault = Object.entries(i.options)
      .filter(([k, v]) => !SERVER_KEYS.includes(k) && JSON.stringify(v) !== JSON.stringify(config.defaults[k]))
      .map(([k, v]) => k + " = " + JSON.stringify(v)).join("\n");
    return el("div", { class: "item", "data-id": i.id },
      el("img", { src: "/api/gallery/" + i.id + "/thumb.png", alt: i.label }),
      el("div", { class: "label" }, "#" + i.id + " " + i.label),
      el("div", { class: "facts" }, facts),
      el("div", { class: "links" },
        el("a", { class: "png", href: "/api/gallery/" + i.id + "/image.png", download: "neural-style-" + i.id + ".png" }, "PNG"),
        el("a", { class: "jpg", href: "/api/gallery/" + i.id + "/image.jpg", download: "neural-style-" + i.id + ".jpg" }, "JPEG"),
        el("button", { class: "copy-cli", onclick: () => copy(i.cli) }, "Copy CLI"),
        el("button", { class: "use-init", onclick: () => { setInit(i); say("the next job starts from result #" + i.id); } }, "Use as init")),
      el("details", {}, el("summary", {}, "settings"), el("pre", {}, (nondefault || "the defaults") + "\n\n" + i.cli)));
  });
  $("gallery").replaceChildren(...cards);
}
async function copy(text) {
  try { await navigator.clipboard.writeText(text); say("copied: " + text); }
  catch (_) { say(text); }
}
function applyState(s) {
  state = s;
  const r = s.running;
  if (r && (!liveJob || liveJob.id !== r.id)) {
    liveJob = { id: r.id, of: r.of };
    history = (r.history || []).slice();
    $("live-label").textContent = r.label;
    if (r.preview) showPreview(r.id, r.preview);
  }
  if (r) {
    liveJob.of = r.of || liveJob.of;
    if (r.iteration) showProgress(r);
  }
  renderQueue();
  renderGallery();
  renderCompare();
  drawChart();
}
async function stop(id) {
  try { await api("/api/jobs/" + id + "/stop", {}); } catch (e) { say(e.message, true); }
}

function connect() {
  const es = new EventSource("/api/events");
  es.onopen = () => { $("status").textContent = "connected · " + config.backend; $("status").className = "status ok"; };
  es.onerror = () => { $("status").textContent = "reconnecting…"; $("status").className = "status"; };
  es.addEventListener("state", (e) => applyState(JSON.parse(e.data)));
  es.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    if (!liveJob || liveJob.id !== p.job) { liveJob = { id: p.job, of: p.of }; history = []; }
    history.push([p.iteration, p.loss]);
    liveJob.of = p.of;
    showProgress(p);
    drawChart();
  });
  es.addEventListener("preview", (e) => {
    const p = JSON.parse(e.data);
    showPreview(p.job, p.iteration);
  });
  es.addEventListener("result", (e) => {
    const i = JSON.parse(e.data);
    if (liveJob && liveJob.id === i.job) $("preview").src = "/api/gallery/" + i.id + "/image.png";
  });
  es.addEventListener("failed", (e) => {
    const f = JSON.parse(e.data);
    say(f.label + ": " + f.error, true);
  });
}

async function start() {
  config = await api("/api/config");
  for (const name of Object.keys(config.presets)) $("preset").append(el("option", { value: name }, name));
  $("size").max = config.max_size;
  setFields(config.defaults);
  $("preset").addEventListener("change", () => setFields(baseOptions()));
  $("strength").addEventListener("input", fromSlider);
  $("content-weight").addEventListener("input", syncSlider);
  $("style-weight").addEventListener("input", syncSlider);
  for (const s of config.samples) {
    $("samples").append(el("button", { "data-sample": s.name, title: s.title, onclick: () => useSample(s) },
      s.name.replace(/\.\w+$/, "").replace(/_/g, " ") + " (" + s.kind + ")"));
  }
  dropZone("content-drop", "content-file", "content");
  dropZone("style-drop", "style-file", "style");
  $("paint").addEventListener("click", () => paint(null));
  $("stop").addEventListener("click", () => { if ($("stop").dataset.job) stop($("stop").dataset.job); });
  $("compare").addEventListener("click", () => {
    const list = $("compare-strengths").value.split(",").map((x) => Number(x.trim())).filter((x) => x > 0);
    if (list.length < 2) { say("give two or more strengths, e.g. 2, 20, 200", true); return; }
    paint(list);
  });
  renderInputs();
  renderQueue();
  connect();
}
start().catch((e) => say("cannot start: " + e.message, true));
