// The playground page: chat, compare and runs views over the JSON API (no libraries, nothing from the internet).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

const faNum = {};
function num(x, digits = 2) {
  if (x == null || Number.isNaN(x)) return "–";
  faNum[digits] ??= new Intl.NumberFormat("fa-IR", { maximumFractionDigits: digits });
  return faNum[digits].format(x);
}
function latin(x, digits = 4) {
  if (x == null || Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  return a !== 0 && (a >= 1e5 || a < 1e-3) ? x.toExponential(2) : String(+x.toFixed(digits));
}

function toast(message) {
  const t = $("#toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return r.json();
}

// POST /api/generate and read its server-sent events (EventSource cannot POST).
async function generate(body, { signal, onEvent }) {
  const res = await fetch("/api/generate", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal,
  });
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    try { msg = (await res.json()).error || msg; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) onEvent(event, JSON.parse(data));
    }
  }
}

function sampling() {
  return {
    temperature: parseFloat($("#temperature").value),
    top_p: parseFloat($("#top-p").value),
    max_new_tokens: parseInt($("#max-new-tokens").value, 10),
  };
}

const REASONS = { eos: "پایان متن", length: "سقف توکن", stopped: "متوقف شد", time: "سقف زمان" };
function statsLine(d) {
  return `${num(d.tokens, 0)} توکن · ${num(d.tokens_per_s, 1)} توکن بر ثانیه · ${num(d.chars_per_token, 2)} نویسه بر توکن`
    + ` · نخستین توکن ${num(d.ttft_s, 3)} ثانیه · ورودی ${num(d.prompt_tokens, 0)} توکن · ${REASONS[d.finish_reason] || d.finish_reason}`;
}

// Stream one answer into a card holding .text and .stats; returns the text.
async function streamInto(card, body, controller, onToken) {
  const textEl = $(".text", card), statsEl = $(".stats", card);
  let text = "";
  card.dataset.state = "waiting";
  try {
    await generate(body, {
      signal: controller.signal,
      onEvent: (event, data) => {
        if (event === "queued" && data.ahead) statsEl.textContent = `در صف: ${num(data.ahead, 0)} درخواست جلوتر`;
        else if (event === "loading") statsEl.textContent = "بارگذاری مدل…";
        else if (event === "start") {
          card.dataset.state = "streaming";
          card.dataset.mode = data.mode;
          statsEl.textContent = data.prompt_tokens_dropped
            ? `در حال تولید… (${num(data.prompt_tokens_dropped, 0)} توکن آغاز گفتگو از پنجرهٔ مدل بیرون ماند)` : "در حال تولید…";
        } else if (event === "token") {
          text += data.text;
          textEl.textContent = text;
          if (onToken) onToken();
        } else if (event === "done") {
          card.dataset.state = "done";
          card.dataset.tokens = data.tokens;
          statsEl.textContent = statsLine(data);
        } else if (event === "error") {
          card.dataset.state = "error";
          statsEl.textContent = data.error;
          statsEl.classList.add("error");
        }
      },
    });
  } catch (e) {
    card.dataset.state = e.name === "AbortError" ? "stopped" : "error";
    statsEl.textContent = e.name === "AbortError" ? "متوقف شد" : e.message;
    if (e.name !== "AbortError") statsEl.classList.add("error");
  }
  return text;
}

// ---------------------------------------------------------------------------------------------- models

const state = { models: [], chat: { messages: [], controller: null }, compare: [], runs: [], runTimer: null };

async function loadModels() {
  try {
    state.models = await getJSON("/api/models");
  } catch (e) {
    toast(`فهرست مدل‌ها در دسترس نیست: ${e.message}`);
    return;
  }
  const select = $("#chat-model");
  const before = select.value;
  select.replaceChildren(...state.models.map((m) => el("option", { value: m.name, text: m.name })));
  if (before && state.models.some((m) => m.name === before)) select.value = before;
  if (!state.models.length) select.append(el("option", { value: "", text: "مدلی نیست (--model یا --runs)" }));
  updateMode();
  const picks = $("#compare-models");
  const checked = new Set([...picks.querySelectorAll("input:checked")].map((i) => i.value));
  picks.replaceChildren(el("legend", { text: "مدل‌ها (۲ تا ۴)" }));
  state.models.forEach((m, i) => {
    const box = el("input", { type: "checkbox", value: m.name, name: "compare-model" });
    box.checked = checked.size ? checked.has(m.name) : i < 2;
    box.addEventListener("change", limitPicks);
    picks.append(el("label", { dir: "ltr" }, box, " " + m.name));
  });
  limitPicks();
}

function limitPicks() {
  const boxes = [...document.querySelectorAll("#compare-models input")];
  const n = boxes.filter((b) => b.checked).length;
  boxes.forEach((b) => { b.disabled = !b.checked && n >= 4; });
}

// ------------------------------------------------------------------------------------------------ chat

function chatModel() { return state.models.find((m) => m.name === $("#chat-model").value); }

function updateMode() {
  const m = chatModel();
  $("#chat-mode").textContent = !m ? "" : m.chat ? "مدل گفتگو: قالب چت خود مدل" : "مدل پایه: ادامهٔ متن";
}

function addMessage(role, text, label) {
  const div = el("div", { class: `msg ${role}`, dir: "auto" },
    el("span", { class: "who", text: label }), el("span", { class: "text", text }), el("div", { class: "stats" }));
  $("#chat-log").append(div);
  scrollLog();
  return div;
}
function scrollLog() { const log = $("#chat-log"); log.scrollTop = log.scrollHeight; }

function chatBusy(busy) {
  $("#chat-send").disabled = busy;
  $("#chat-stop").disabled = !busy;
}

async function sendChat(ev) {
  ev.preventDefault();
  const input = $("#chat-input");
  const content = input.value.trim();
  const model = chatModel();
  if (!content || !model || state.chat.controller) return;
  input.value = "";
  state.chat.messages.push({ role: "user", content });
  addMessage("user", content, "شما");
  const card = addMessage("assistant", "", model.name);
  const controller = new AbortController();
  state.chat.controller = controller;
  chatBusy(true);
  const text = await streamInto(card, { model: model.name, messages: state.chat.messages, ...sampling() },
    controller, scrollLog);
  if (text) state.chat.messages.push({ role: "assistant", content: text });
  state.chat.controller = null;
  chatBusy(false);
  input.focus();
}

function resetChat() {
  if (state.chat.controller) state.chat.controller.abort();
  state.chat.messages = [];
  $("#chat-log").replaceChildren();
}

// --------------------------------------------------------------------------------------------- compare

async function runCompare(ev) {
  ev.preventDefault();
  const names = [...document.querySelectorAll("#compare-models input:checked")].map((b) => b.value);
  const prompt = $("#compare-input").value.trim();
  if (names.length < 2 || names.length > 4) { toast("۲ تا ۴ مدل برگزینید."); return; }
  if (!prompt || state.compare.length) return;
  const grid = $("#compare-grid");
  grid.replaceChildren();
  $("#compare-run").disabled = true;
  $("#compare-stop").disabled = false;
  const settings = sampling();
  state.compare = names.map(() => new AbortController());
  await Promise.all(names.map((name, i) => {
    const card = el("div", { class: "answer", "data-model": name },
      el("h3", { dir: "ltr", text: name }), el("div", { class: "text", dir: "auto" }), el("div", { class: "stats" }));
    grid.append(card);
    return streamInto(card, { model: name, prompt, ...settings }, state.compare[i]);
  }));
  state.compare = [];
  $("#compare-run").disabled = false;
  $("#compare-stop").disabled = true;
}

// ------------------------------------------------------------------------------------------------ charts

function niceTicks(lo, hi, n = 5) {
  if (!(hi > lo)) { hi = lo + 1; lo -= 1; }
  const raw = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return ticks;
}

// series: [{name, cls, points: [[x, y]], axis: "left" | "right", dots}]
function lineChart(series, { xLabel = "step", yLabel = "", y2Label = "", title = "" } = {}) {
  const W = 720, H = 300, pad = { l: 58, r: 58, t: 16, b: 40 };
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const xmin = Math.min(...xs), xmax = Math.max(...xs);
  const range = (axis) => {
    const ys = series.filter((s) => (s.axis || "left") === axis).flatMap((s) => s.points.map((p) => p[1]))
      .filter(Number.isFinite);
    if (!ys.length) return null;
    let lo = Math.min(...ys), hi = Math.max(...ys);
    const m = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 1;
    return [lo - m, hi + m];
  };
  const yl = range("left"), yr = range("right");
  const sx = (x) => pad.l + (xmax > xmin ? (x - xmin) / (xmax - xmin) : 0.5) * (W - pad.l - pad.r);
  const syFor = ([lo, hi]) => (y) => H - pad.b - (y - lo) / (hi - lo) * (H - pad.t - pad.b);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  if (yl) {
    const sy = syFor(yl);
    for (const t of niceTicks(yl[0], yl[1])) {
      if (t < yl[0] || t > yl[1]) continue;
      chart.append(svg("line", { x1: pad.l, x2: W - pad.r, y1: sy(t), y2: sy(t), class: "grid-line" }));
      chart.append(svg("text", { x: pad.l - 6, y: sy(t) + 4, "text-anchor": "end" }, latin(t, 3)));
    }
  }
  if (yr) {
    const sy = syFor(yr);
    for (const t of niceTicks(yr[0], yr[1])) {
      if (t < yr[0] || t > yr[1]) continue;
      chart.append(svg("text", { x: W - pad.r + 6, y: sy(t) + 4, "text-anchor": "start" }, latin(t, 3)));
    }
  }
  for (const t of niceTicks(xmin, xmax, 6)) {
    if (t < xmin || t > xmax) continue;
    chart.append(svg("text", { x: sx(t), y: H - pad.b + 16, "text-anchor": "middle" }, latin(t, 0)));
  }
  chart.append(svg("line", { x1: pad.l, x2: W - pad.r, y1: H - pad.b, y2: H - pad.b, class: "axis" }));
  chart.append(svg("line", { x1: pad.l, x2: pad.l, y1: pad.t, y2: H - pad.b, class: "axis" }));
  chart.append(svg("text", { x: (W + pad.l - pad.r) / 2, y: H - 6, "text-anchor": "middle" }, xLabel));
  chart.append(svg("text", { x: 14, y: pad.t + 8, "text-anchor": "start" }, yLabel));
  if (yr) chart.append(svg("text", { x: W - 14, y: pad.t + 8, "text-anchor": "end" }, y2Label));
  for (const s of series) {
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    if (!pts.length) continue;
    const sy = syFor((s.axis || "left") === "right" ? yr : yl);
    chart.append(svg("polyline", {
      class: s.cls, "data-series": s.cls, "data-points": pts.length,
      points: pts.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "),
    }));
    if (s.dots) for (const p of pts) chart.append(svg("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 3, class: `dot-${s.cls}` }));
  }
  return chart;
}

function legend(items) {
  return el("div", { class: "legend", dir: "ltr" },
    ...items.map(([cls, label]) => el("span", {}, el("span", { class: `sw ${cls}` }), label)));
}

function barChart(rows, { label, value, title }) {
  const W = 720, barH = 26, pad = { l: 150, r: 70, t: 10, b: 10 };
  const H = pad.t + pad.b + rows.length * (barH + 8);
  const max = Math.max(...rows.map(value).filter(Number.isFinite), 1e-9);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  rows.forEach((r, i) => {
    const y = pad.t + i * (barH + 8), v = value(r), w = Number.isFinite(v) ? (v / max) * (W - pad.l - pad.r) : 0;
    chart.append(svg("text", { x: pad.l - 8, y: y + barH * 0.68, "text-anchor": "end", class: "bar-label" }, label(r)));
    chart.append(svg("rect", { x: pad.l, y, width: Math.max(w, 1), height: barH, class: "bar", "data-value": v }));
    chart.append(svg("text", { x: pad.l + w + 6, y: y + barH * 0.68 }, latin(v, 3)));
  });
  return chart;
}

// -------------------------------------------------------------------------------------------------- runs

const KINDS = {
  train: "آموزش", corpus: "پیکره", eval: "ارزیابی", compare: "مقایسهٔ ارزیابی", fertility: "زایایی توکن‌ساز",
  tokenizer: "توکن‌ساز", model: "مدل", adapter: "آداپتور", report: "گزارش",
};
const enc = encodeURIComponent;

async function loadRuns(activeId) {
  try {
    state.runs = await getJSON("/api/runs");
  } catch (e) {
    toast(`فهرست اجراها در دسترس نیست: ${e.message}`);
    return;
  }
  const list = $("#runs-list");
  list.replaceChildren();
  if (!state.runs.length) list.append(el("p", { class: "hint", text: "اجرایی پیدا نشد (--runs DIR)." }));
  for (const r of state.runs) {
    list.append(el("a", {
      href: `#runs/${enc(r.id)}`, class: `${r.parent ? "child" : ""} ${r.id === activeId ? "active" : ""}`,
      "data-run": r.id, "data-kind": r.kind,
    }, el("span", { class: "title", text: r.title }), el("span", { class: "kind", text: KINDS[r.kind] || r.kind })));
  }
}

function table(head, rows, numeric = []) {
  return el("table", {},
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { text: h })))),
    el("tbody", {}, ...rows.map((row) => el("tr", {}, ...row.map((c, i) => c instanceof Node
      ? el("td", {}, c) : el("td", { class: numeric.includes(i) ? "num" : null, text: c ?? "–" }))))));
}

function scriptDir(text) {
  const arabic = (text.match(/[\u0600-\u06FF]/g) || []).length;
  const latinChars = (text.match(/[A-Za-z]/g) || []).length;
  return arabic > latinChars ? "rtl" : "ltr";
}

async function showRun(id) {
  stopRunTimer();
  const box = $("#run-detail");
  document.querySelectorAll("#runs-list a").forEach((a) => a.classList.toggle("active", a.dataset.run === id));
  let d;
  try {
    d = await getJSON(`/api/runs/${enc(id)}`);
  } catch (e) {
    box.replaceChildren(el("p", { class: "error", text: e.message }));
    return;
  }
  box.replaceChildren(
    el("h2", { text: d.title }),
    el("div", { class: "kind", text: `${KINDS[d.kind] || d.kind}${d.track ? ` · ${d.track}` : ""}` }),
    el("div", { class: "path", text: d.path }),
  );
  box.dataset.run = id;
  window.scrollTo(0, 0);
  if (d.metrics) {
    const chartBox = el("div", { id: "loss-chart" });
    box.append(el("h3", {}, "منحنی خطا ", el("span", { class: "live", id: "live-badge", hidden: true, text: "زنده" })),
      chartBox);
    await drawMetrics(id, chartBox);
    state.runTimer = setInterval(() => drawMetrics(id, chartBox), 2000);
  }
  if (d.eval) {
    box.append(el("h3", { text: `جدول ارزیابی: ${d.eval.label}` }), el("div", { dir: "ltr" }, table(
      ["task", "metric", "value", "± stderr", "n"],
      d.eval.rows.map((r) => [(r.depth ? "  ".repeat(r.depth) + "└ " : "") + r.task, r.metric, latin(r.value),
        r.stderr == null ? "" : latin(r.stderr), r.n]), [2, 3, 4])));
  }
  if (d.compare) {
    box.append(el("h3", { text: "مقایسهٔ ارزیابی‌ها" }), el("div", { dir: "ltr" }, table(
      ["task", "metric", ...d.compare.labels],
      d.compare.table.map((r) => [r.task, r.metric, ...d.compare.labels.map((l) => latin(r.values?.[l]?.value))]),
      d.compare.labels.map((_, i) => i + 2))));
  }
  if (d.fertility) {
    const toks = d.fertility.tokenizers;
    box.append(el("h3", { text: "زایایی توکن‌ساز: توکن بر واژه (کمتر بهتر)" }),
      el("div", { dir: "ltr", id: "fertility-chart" }, barChart(toks, {
        label: (t) => t.name, value: (t) => t.tokens_per_word, title: "tokens per word",
      })),
      el("div", { dir: "ltr" }, table(["tokenizer", "kind", "vocab", "tokens/word", "chars/token", "byte fallback"],
        toks.map((t) => [t.name, t.kind, t.vocab_size, latin(t.tokens_per_word, 3), latin(t.chars_per_token, 2),
          t.byte_fallback_rate == null ? "–" : `${(t.byte_fallback_rate * 100).toFixed(2)}%`]), [2, 3, 4, 5])));
  }
  if (d.corpus) corpusView(d, box);
  const cardHtml = d.card ? d.card.html : "";
  const figs = d.images.filter((name) => !cardHtml.includes(`/files/${enc(name)}`));
  if (figs.length) {
    box.append(el("h3", { text: "نمودارها" }), el("div", { class: "figures" }, ...figs.map((name) => el("figure", {},
      el("img", { src: `/api/runs/${enc(id)}/files/${enc(name)}`, alt: name, loading: "lazy" }),
      el("figcaption", { dir: "ltr", text: name })))));
  }
  if (d.card) {
    const card = el("div", { class: "card", id: "run-card" });
    card.innerHTML = d.card.html; // rendered by the server from Markdown with raw HTML escaped
    card.setAttribute("dir", scriptDir(card.textContent));
    box.append(el("h3", { dir: "ltr", text: d.card.file }), card);
  }
  if (d.children.length) {
    box.append(el("h3", { text: "درون این اجرا" }), el("ul", {}, ...d.children.map((c) => el("li", { dir: "ltr" },
      el("a", { href: `#runs/${enc(c)}`, text: c })))));
  }
}

function stopRunTimer() {
  if (state.runTimer) clearInterval(state.runTimer);
  state.runTimer = null;
}

const etags = {};
async function drawMetrics(id, box) {
  const url = `/api/runs/${enc(id)}/metrics`;
  let r;
  try {
    r = await fetch(url, { headers: etags[id] && box.firstChild ? { "If-None-Match": etags[id] } : {} });
  } catch (e) { return; }
  if (r.status === 304 || !r.ok) return;
  etags[id] = r.headers.get("ETag");
  const m = await r.json();
  const badge = $("#live-badge");
  if (badge) badge.hidden = !m.live;
  if (!m.train.length && !m.eval.length) {
    box.replaceChildren(el("p", { class: "hint", text: "هنوز رکوردی در metrics.jsonl نیست." }));
    return;
  }
  const series = [{ cls: "train-loss", points: m.train.map((p) => [p.step, p.loss]) }];
  const items = [["train-loss", "train loss"]];
  if (m.eval.length) {
    series.push({ cls: "val-loss", dots: true, points: m.eval.map((p) => [p.step, p.loss]) });
    items.push(["val-loss", "validation loss"]);
    if (m.eval.some((p) => p.bits_per_byte != null)) {
      series.push({ cls: "val-bpb", axis: "right", dots: true, points: m.eval.map((p) => [p.step, p.bits_per_byte]) });
      items.push(["val-bpb", "validation bits/byte (right axis)"]);
    }
  }
  const last = m.train[m.train.length - 1];
  box.replaceChildren(el("div", { dir: "ltr" }, lineChart(series, {
    yLabel: "loss", y2Label: "bits/byte", title: `loss curve, ${m.train.length} steps` }), legend(items),
    el("div", { class: "stats", text: last ? `step ${last.step}: loss ${latin(last.loss)}, lr ${latin(last.lr)}`
      + (last.tokens_per_s ? `, ${Math.round(last.tokens_per_s)} tokens/s` : "") : "" })));
}

function corpusView(d, box) {
  const c = d.corpus;
  box.append(el("h3", { text: "پیکره" }), el("p", {
    text: `خوانده ${num(c.read, 0)} سند، نگه‌داشته ${num(c.kept?.documents, 0)} سند (${num(c.kept?.words, 0)} واژه)، `
      + `کنار گذاشته ${num(c.dropped_total, 0)} سند.`,
  }));
  const preview = el("div", { id: "dataset-preview", class: "rows" });
  const tabs = el("div", { class: "tabs pager" });
  const pager = el("div", { class: "pager" });
  const rowsBox = el("div");
  preview.append(tabs, rowsBox, pager);
  box.append(el("h3", { text: "پیش‌نمایش داده" }), preview);
  const reasons = [];
  for (const [filter, counts] of Object.entries(c.dropped || {})) {
    for (const [reason, n] of Object.entries(counts)) reasons.push([filter, reason, n]);
  }
  if (reasons.length) {
    box.append(el("h3", { text: "دلیل‌های کنار گذاشتن (از کارت داده)" }),
      el("div", { dir: "ltr", id: "drop-reasons" }, table(["filter", "reason", "documents"], reasons, [2])));
  }
  const view = { name: "kept", offset: 0, limit: 10 };
  const tabButtons = [["kept", `نگه‌داشته (${num(c.rows, 0)})`], ["dropped", `نمونه‌های کنار گذاشته (${num(c.rejects, 0)})`]]
    .map(([name, label]) => {
      const b = el("button", { type: "button", "data-view": name, text: label });
      b.addEventListener("click", () => { view.name = name; view.offset = 0; load(); });
      return b;
    });
  tabs.append(...tabButtons);
  async function load() {
    tabButtons.forEach((b) => b.classList.toggle("on", b.dataset.view === view.name));
    let page;
    try {
      page = await getJSON(`/api/runs/${enc(d.id)}/rows?view=${view.name}&offset=${view.offset}&limit=${view.limit}`);
    } catch (e) {
      rowsBox.replaceChildren(el("p", { class: "error", text: e.message }));
      return;
    }
    const text = (r) => el("div", { class: "clip", title: "برای متن کامل کلیک کنید" }, el("span", { dir: "rtl", text: r.text }),
      r.text_chars > r.text.length ? el("span", { class: "more", text: ` … (${num(r.text_chars, 0)} نویسه)` }) : null);
    const rows = view.name === "kept"
      ? page.rows.map((r, i) => [String(page.offset + i + 1), r.source, r.title, r.n_words, text(r)])
      : page.rows.map((r, i) => [String(page.offset + i + 1), r.filter, r.reason, r.source, text(r)]);
    const head = view.name === "kept" ? ["#", "منبع", "عنوان", "واژه‌ها", "متن"] : ["#", "پالایه", "دلیل", "منبع", "متن"];
    const t = table(head, rows, [0, 3]);
    t.querySelectorAll("tbody tr td:last-child").forEach((td) => {
      td.classList.add("text");
      td.addEventListener("click", () => td.firstChild.classList.toggle("open"));
    });
    rowsBox.replaceChildren(t);
    const prev = el("button", { type: "button", class: "secondary", text: "قبلی", disabled: view.offset === 0 });
    const next = el("button", { type: "button", class: "secondary", text: "بعدی",
      disabled: view.offset + view.limit >= page.total });
    prev.addEventListener("click", () => { view.offset = Math.max(0, view.offset - view.limit); load(); });
    next.addEventListener("click", () => { view.offset += view.limit; load(); });
    pager.replaceChildren(prev, el("span", {
      text: page.total ? `${num(page.offset + 1, 0)}–${num(Math.min(page.total, page.offset + view.limit), 0)} از ${num(page.total, 0)}` : "خالی",
    }), next);
  }
  load();
}

// ------------------------------------------------------------------------------------------------ router

function route() {
  const [view, ...rest] = (location.hash.slice(1) || "chat").split("/");
  const name = ["chat", "compare", "runs"].includes(view) ? view : "chat";
  for (const v of ["chat", "compare", "runs"]) {
    $(`#view-${v}`).hidden = v !== name;
    $(`#nav-${v}`).classList.toggle("active", v === name);
  }
  stopRunTimer();
  if (name === "runs") {
    const id = rest.length ? decodeURIComponent(rest.join("/")) : null;
    loadRuns(id).then(() => { if (id) showRun(id); });
  } else {
    loadModels();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#chat-form").addEventListener("submit", sendChat);
  $("#chat-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("#chat-form").requestSubmit(); }
  });
  $("#chat-stop").addEventListener("click", () => state.chat.controller && state.chat.controller.abort());
  $("#chat-reset").addEventListener("click", resetChat);
  $("#chat-model").addEventListener("change", updateMode);
  $("#compare-form").addEventListener("submit", runCompare);
  for (const box of [$("#chat-input"), $("#compare-input")]) {  // typed text sets the box's direction
    box.addEventListener("input", () => box.setAttribute("dir", box.value.trim() ? scriptDir(box.value) : "rtl"));
  }
  $("#compare-stop").addEventListener("click", () => state.compare.forEach((c) => c.abort()));
  window.addEventListener("hashchange", route);
  route();
});
