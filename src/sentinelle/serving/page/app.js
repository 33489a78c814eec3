// Sentinelle's page: plain JavaScript, no dependencies, talks to this server's API only.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, feedback: false, last: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

// The API's error detail as one line: a string, or the msg of each 422 entry.
function problem(body, status) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  return `the server answered ${status}`;
}

// A token the user gave (`sentinelle tokens add`), kept for this tab only, sent as a bearer.
const TOKEN_KEY = "sentinelle-token";

function askForToken(why) {
  $("token-why").textContent = why;
  $("token-form").hidden = false;
}

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...options, headers });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const error = new Error(problem(body, response.status));
    error.status = response.status;
    if (response.status === 401 || response.status === 403) askForToken(error.message);
    throw error;
  }
  return body;
}

const fmt = (x, digits = 3) => (typeof x === "number" ? x.toFixed(digits) : String(x));
const signed = (x) => (x >= 0 ? "+" : "−") + Math.abs(x).toFixed(4);

// ------------------------------------------------------------------ views

function route() {
  const view = location.hash === "#model" ? "model" : "check";
  $("view-check").hidden = view !== "check";
  $("view-model").hidden = view !== "model";
  for (const name of ["check", "model"]) {
    const link = $(`nav-${name}`);
    if (name === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "model" && state.model) showModel();
}

// ------------------------------------------------------------------ start-up

async function loadModel() {
  for (;;) {
    try {
      state.model = await api("/model");
      break;
    } catch (error) {
      if (error.status !== 503) {
        $("status").textContent = `The model is not available: ${error.message}`;
        return;
      }
      $("status").textContent = "Loading the model…";
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  const m = state.model;
  $("status").textContent = `Model ${m.model_version} ready, threshold ${fmt(m.threshold)}.`;
  const points = m.operating_points || {};
  const names = Object.keys(points);
  if (names.length) {
    const select = $("operating-point");
    for (const name of names) {
      const p = points[name];
      const text = `${name}: threshold ${fmt(p.threshold)}` +
        (typeof p.ham_fpr === "number" ? `, ham FPR ${fmt(100 * p.ham_fpr, 2)} %` : "") +
        (typeof p.recall === "number" ? `, recall ${fmt(100 * p.recall, 1)} %` : "");
      select.append(el("option", { value: name }, text));
    }
    select.value = m.default_operating_point || names[0];
    $("op-field").hidden = false;
  }
  // 404: this server does not collect feedback; 401/403: it does, for a feedback token.
  const stats = await fetch("/feedback/stats", { headers: { Accept: "application/json" } });
  state.feedback = stats.status !== 404;
  if (location.hash === "#model") showModel();
}

// ------------------------------------------------------------------ checking a message

async function check(event) {
  event.preventDefault();
  const text = $("message").value;
  const k = $("explain-k").value || "8";
  const params = new URLSearchParams({ explain: k });
  if (!$("op-field").hidden && $("operating-point").value) {
    params.set("operating_point", $("operating-point").value);
  }
  $("check-error").hidden = true;
  $("submit").disabled = true;
  try {
    const body = await api(`/predict?${params}`, {
      method: "POST",
      body: JSON.stringify({ text }),
    });
    state.last = { text, body };
    showResult(text, body);
  } catch (error) {
    $("result").hidden = true;
    $("check-error").textContent = error.message;
    $("check-error").hidden = false;
  } finally {
    $("submit").disabled = false;
  }
}

function showResult(text, body) {
  const spam = body.is_spam;
  const point = body.operating_point || ($("op-field").hidden ? "" : $("operating-point").value);
  $("verdict").textContent = spam ? "spam" : "not spam (ham)";
  $("verdict").className = `verdict ${spam ? "is-spam" : "is-ham"}`;
  $("score-text").textContent =
    `Spam score ${fmt(body.spam_score)} is ${spam ? "at or above" : "below"} the threshold ` +
    `${fmt(body.threshold)}` + (point ? ` of the operating point “${point}”.` : ".");
  $("gauge-fill").style.setProperty("width", `${(100 * body.spam_score).toFixed(1)}%`);
  $("gauge-fill").className = `gauge-fill ${spam ? "is-spam" : "is-ham"}`;
  $("gauge-threshold").style.setProperty("left", `${(100 * body.threshold).toFixed(1)}%`);
  const why = body.explanation;
  highlight(text, why);
  fillTable($("spam-table"), why.spam);
  fillTable($("ham-table"), why.ham);
  const listed = [...why.spam, ...why.ham].reduce((sum, item) => sum + item.contribution, 0);
  $("decision-text").textContent =
    `Decision ${signed(why.decision)} = intercept ${signed(why.intercept)} + the words listed ` +
    `${signed(listed)} + all the other words ${signed(why.rest - (why.unplaced || 0))}` +
    (why.unplaced ? ` + on no word ${signed(why.unplaced)}.` : ".");
  $("feedback").hidden = !state.feedback;
  $("feedback-status").textContent = "";
  $("wrong").disabled = false;
  $("result").hidden = false;
}

function fillTable(table, items) {
  const body = table.tBodies[0];
  body.replaceChildren();
  if (!items.length) body.append(el("tr", {}, el("td", { colspan: "2" }, "none")));
  for (const item of items) {
    body.append(el("tr", {},
      el("td", {}, el("q", {}, item.text)),
      el("td", { class: "num" }, signed(item.contribution))));
  }
}

// The listed words in the message, each in a <mark> of its side, darker for a larger share.
// Their offsets count code points, as Python does; a JavaScript string counts UTF-16 units,
// so the message is cut with Array.from (one element per code point).
function highlight(text, why) {
  const chars = Array.from(text);
  const items = [...why.spam, ...why.ham].sort((a, b) => a.start - b.start);
  const strongest = Math.max(1e-12, ...items.map((item) => Math.abs(item.contribution)));
  const out = $("highlighted");
  out.replaceChildren();
  let at = 0;
  for (const item of items) {
    if (item.start < at) continue; // words never overlap; guard against a malformed answer
    out.append(chars.slice(at, item.start).join(""));
    const share = Math.abs(item.contribution) / strongest;
    const level = share > 0.66 ? 3 : share > 0.33 ? 2 : 1;
    const kind = item.contribution > 0 ? "spam" : "ham";
    out.append(el("mark", {
      class: `${kind} l${level}`,
      title: `towards ${kind}: ${signed(item.contribution)}`,
      "data-contribution": String(item.contribution),
    }, chars.slice(item.start, item.end).join("")));
    at = item.end;
  }
  out.append(chars.slice(at).join(""));
}

async function wrong() {
  const { text, body } = state.last;
  const label = body.is_spam ? "ham" : "spam";
  $("wrong").disabled = true;
  try {
    await api("/feedback", { method: "POST", body: JSON.stringify({ text, label }) });
    $("feedback-status").textContent = `Thank you: recorded as ${label}.`;
  } catch (error) {
    $("feedback-status").textContent = `Not recorded: ${error.message}`;
    $("wrong").disabled = false;
  }
}

// ------------------------------------------------------------------ the model card

const METRICS = [
  ["recall", "Recall (spam caught)", true], ["precision", "Precision", true],
  ["ham_fpr", "Ham flagged as spam (FPR)", true], ["f1", "F1", false], ["mcc", "MCC", false],
  ["roc_auc", "ROC AUC", false], ["accuracy", "Accuracy", true],
  ["n_spam", "Test spam", false], ["n_ham", "Test ham", false],
];

function rows(table, pairs) {
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const [name, value] of pairs) {
    body.append(el("tr", {}, el("th", { scope: "row" }, name), el("td", { class: "num" }, value)));
  }
}

async function showModel() {
  const m = state.model;
  const train = (m.metadata && m.metadata.params && m.metadata.params.train) || {};
  const facts = $("model-facts");
  facts.replaceChildren();
  const add = (k, v) => { if (v !== undefined && v !== null) facts.append(el("dt", {}, k), el("dd", {}, String(v))); };
  add("Version", m.model_version);
  add("Threshold", fmt(m.threshold, 6));
  add("Classifier", train.classifier);
  add("Features", train.features);
  if (m.default_operating_point) add("Default operating point", m.default_operating_point);
  let evaluation = null;
  try { evaluation = await api("/model/evaluation"); } catch (error) { evaluation = null; }
  // The card that travels with the model (GET /model: evaluation, checked to be of this very
  // model) first; the project's dvclive/ evaluation (GET /model/evaluation) otherwise.
  const card = m.evaluation || null;
  const metrics = (card && card.headline) || (evaluation && evaluation.metrics) || null;
  $("metrics-missing").hidden = Boolean(metrics);
  $("other-model").hidden = !(evaluation && evaluation.of_served_model === false);
  rows($("metrics-table"), metrics ? METRICS.filter(([k]) => typeof metrics[k] === "number")
    .map(([k, label, pct]) => [label, pct ? `${fmt(100 * metrics[k], 2)} %` : String(metrics[k])]) : []);
  const roc = card && card.roc && Array.isArray(card.roc.fpr)
    ? card.roc.fpr.map((fpr, i) => ({ fpr, tpr: card.roc.tpr[i] }))
    : evaluation && evaluation.roc;
  drawRoc(roc);
  const cells = { tn: ["ham", "ham"], fp: ["ham", "spam"], fn: ["spam", "ham"], tp: ["spam", "spam"] };
  const counted = metrics && Object.keys(cells).every((k) => typeof metrics[k] === "number")
    ? Object.entries(cells).map(([k, [actual, predicted]]) => ({ actual, predicted, count: metrics[k] }))
    : evaluation && evaluation.confusion;
  drawConfusion(counted);
  const images = $("images");
  images.replaceChildren();
  for (const name of (evaluation && evaluation.images) || []) {
    const caption = name.replace(/\.png$/, "").replaceAll("_", " ");
    images.append(el("figure", {},
      el("img", { src: `/model/evaluation/images/${encodeURIComponent(name)}`, alt: `Plot: ${caption}` }),
      el("figcaption", {}, caption)));
  }
  showTopNgrams(m.top_ngrams);
  const report = evaluation && evaluation.data_report;
  const data = [];
  if (report) {
    if (report.rows_read !== undefined) data.push(["Rows read", String(report.rows_read)]);
    if (report.rows !== undefined) data.push(["Rows kept", String(report.rows)]);
    if (report.duplicates !== undefined) data.push(["Duplicates dropped", String(report.duplicates)]);
    for (const [split, c] of Object.entries(report.splits || {})) {
      data.push([`${split}: spam / ham`, `${c.spam} / ${c.ham}`]);
    }
  }
  rows($("data-table"), data.length ? data : [["Data report", "not found next to this model"]]);
}

function drawRoc(points) {
  $("roc-figure").hidden = !points;
  if (!points) return;
  const chart = $("roc");
  chart.querySelectorAll(":not(desc)").forEach((n) => n.remove());
  const x = (v) => 30 + 200 * v, y = (v) => 210 - 200 * v;
  chart.append(svg("rect", { x: 30, y: 10, width: 200, height: 200, class: "frame" }));
  chart.append(svg("line", { x1: x(0), y1: y(0), x2: x(1), y2: y(1), class: "chance" }));
  chart.append(svg("polyline", {
    points: points.map((p) => `${x(p.fpr).toFixed(2)},${y(p.tpr).toFixed(2)}`).join(" "),
    class: "curve",
  }));
  const label = (text, attrs) => { const t = svg("text", attrs); t.textContent = text; chart.append(t); };
  label("false positive rate", { x: 130, y: 235, "text-anchor": "middle" });
  label("true positive rate", { x: 12, y: 110, "text-anchor": "middle", transform: "rotate(-90 12 110)" });
  $("roc-desc").textContent = `ROC curve through ${points.length} points`;
}

function drawConfusion(counts) {
  $("confusion-figure").hidden = !counts;
  if (!counts) return;
  const table = $("confusion");
  table.replaceChildren();
  const labels = ["ham", "spam"];
  const count = (a, p) => (counts.find((c) => c.actual === a && c.predicted === p) || { count: 0 }).count;
  table.append(el("tr", {}, el("td", {}), ...labels.map((p) => el("th", { scope: "col" }, `predicted ${p}`))));
  for (const a of labels) {
    table.append(el("tr", {}, el("th", { scope: "row" }, `actual ${a}`),
      ...labels.map((p) => el("td", { class: `num ${a === p ? "right" : "wrong"}` }, String(count(a, p))))));
  }
}

// The model's strongest weights each way, named as a person reads them (GET /model: word
// n-grams as words, character n-grams in quotes with · for a word boundary).
function showTopNgrams(top) {
  const box = $("top-ngrams");
  if (!top || typeof top !== "object") return;
  box.replaceChildren();
  for (const [label, items] of Object.entries(top)) {
    if (!Array.isArray(items) || !items.length) continue;
    const list = el("ol");
    for (const [name, value] of items) {
      list.append(el("li", {}, el("code", {}, String(name)),
        typeof value === "number" ? ` ${signed(value)}` : ""));
    }
    box.append(el("div", { class: "top" }, el("h4", {}, `Towards ${label}`), list));
  }
}

function useToken(event) {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  $("token-form").hidden = true;
  if (!state.model) loadModel();
  else if ($("feedback-status").textContent.startsWith("Not recorded")) wrong();
}

// ------------------------------------------------------------------ wiring

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  $("check-form").addEventListener("submit", check);
  $("wrong").addEventListener("click", wrong);
  $("token-form").addEventListener("submit", useToken);
  // Ctrl/Cmd+Enter in the message box checks it too.
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("check-form").requestSubmit();
  });
  route();
  loadModel();
});
