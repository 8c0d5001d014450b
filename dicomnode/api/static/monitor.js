"use strict";
// The model-monitoring page: figures from /api/monitoring drawn as SVG, built with DOM calls (no HTML from data).
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("dicomnode.token") || "";

function el(tag, attrs = {}, text = "") {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text) node.textContent = text;
  return node;
}

const pct = (v) => (v === null || v === undefined ? "-" : (100 * v).toFixed(1) + "%");

function bars(title, values, options = {}) {
  const width = 320, height = 140, pad = 20;
  const figure = el("figure", { class: "chart", "data-chart": options.key || title });
  const svg = el("svg:svg", { width, height, role: "img", "aria-label": title });
  const top = Math.max(options.max || 0, options.limit || 0, ...values.map((v) => v.value), 1e-9);
  const step = (width - pad) / Math.max(values.length, 1);
  values.forEach((v, i) => {
    const h = ((height - 2 * pad) * Math.min(v.value, top)) / top;
    const over = options.limit !== undefined && (options.below ? v.value < options.limit : v.value > options.limit);
    svg.append(el("svg:rect", { x: pad + i * step + 1, y: height - pad - h, width: Math.max(step - 2, 1), height: h,
      fill: over ? "#c62828" : "#3c6ec8", "data-value": v.value }));
    if (v.overlay !== undefined) {
      const o = ((height - 2 * pad) * Math.min(v.overlay, top)) / top;
      svg.append(el("svg:rect", { x: pad + i * step + 1, y: height - pad - o, width: Math.max(step - 2, 1), height: o, fill: "#c87820" }));
    }
    if (v.label) svg.append(el("svg:text", { x: pad + i * step + 1, y: height - 6 }, v.label));
  });
  if (options.limit !== undefined) {
    const y = height - pad - ((height - 2 * pad) * Math.min(options.limit, top)) / top;
    svg.append(el("svg:line", { x1: pad, x2: width, y1: y, y2: y, stroke: "#c62828" }));
  }
  svg.append(el("svg:line", { x1: pad, x2: width, y1: height - pad, y2: height - pad, stroke: "#888" }));
  figure.append(svg, el("figcaption", {}, title));
  return figure;
}

function hbars(title, entries, limit, key) {
  // one bar per feature, its name on the left; red past the limit
  const row = 16, label = 130, width = 360, height = row * entries.length + 10;
  const figure = el("figure", { class: "chart", "data-chart": key });
  const svg = el("svg:svg", { width, height, role: "img", "aria-label": title });
  const top = Math.max(limit * 2, ...entries.map(([, v]) => v));
  const scale = (width - label - 40) / top;
  entries.forEach(([name, value], i) => {
    svg.append(el("svg:text", { x: 0, y: i * row + 12 }, name));
    svg.append(el("svg:rect", { x: label, y: i * row + 3, width: Math.max(value * scale, 1), height: row - 5,
      fill: value > limit ? "#c62828" : "#3c6ec8", "data-value": value }));
    svg.append(el("svg:text", { x: label + value * scale + 4, y: i * row + 12 }, value.toFixed(2)));
  });
  svg.append(el("svg:line", { x1: label + limit * scale, x2: label + limit * scale, y1: 0, y2: height, stroke: "#c62828" }));
  figure.append(svg, el("figcaption", {}, title));
  return figure;
}

function version(v, alerts, thresholds) {
  const box = el("section", { class: "version", "data-model": v.model, "data-version": v.model_version });
  const fb = v.feedback;
  const agreement = fb.agreement_rate === null ? "no verdicts"
    : `${pct(fb.agreement_rate)} (95% ${pct(fb.agreement_ci95[0])}-${pct(fb.agreement_ci95[1])}) of ${fb.agree + fb.disagree}`;
  box.append(el("h2", {}, `${v.model} ${v.model_version}`));
  box.append(el("p", {}, `${v.analysed} studies; positive ${pct(v.positive_rate)} (baseline ${pct(v.baseline_positive_rate)}); ` +
    `failed ${pct(v.jobs.failed_rate)}, out of scope ${pct(v.jobs.out_of_scope_rate)}; readers agree ${agreement}`));
  for (const a of alerts) box.append(el("p", { class: "alert" }, `Alert: ${a.kind}: ${a.detail}`));
  const charts = el("div", { class: "charts" });
  charts.append(bars("Studies per day (positive in orange)", v.per_day.map((d) => ({ value: d.analysed, overlay: d.positive, label: d.date.slice(5) })), { key: "per-day" }));
  charts.append(bars("Score histogram (max probability 0-1)", v.score_histogram.map((n) => ({ value: n })), { key: "scores" }));
  const psi = Object.entries(v.drift.psi).filter(([, p]) => p !== null);
  charts.append(hbars(`Input drift, PSI per feature (alert above ${thresholds.psi_alert})`, psi, thresholds.psi_alert, "drift"));
  charts.append(bars(`Reader agreement per day (alert below ${thresholds.agreement_alert})`, fb.per_day.map((d) => ({ value: d.verdicts ? d.agree / d.verdicts : 0, label: d.date.slice(5) })), { key: "agreement", limit: thresholds.agreement_alert, below: true, max: 1 }));
  box.append(charts);
  return box;
}

async function load() {
  const response = await fetch("/api/monitoring", { headers: { Authorization: "Bearer " + token } });
  if (response.status === 401) { signOut("That token was not accepted."); return; }
  const data = await response.json();
  $("signin").hidden = true;
  $("app").hidden = false;
  const first = data.versions[0];
  $("window").textContent = first ? `${first.window.from} to ${first.window.to}` : `last ${data.window_days} days`;
  $("alerts").replaceChildren(el("p", {}, data.alerts.length ? `${data.alerts.length} open alert(s)` : "No open alerts"));
  $("versions").replaceChildren(...(data.versions.length ? data.versions.map((v) => version(v,
    data.alerts.filter((a) => a.model === v.model && a.model_version === v.model_version), data.thresholds))
    : [el("p", {}, "No results yet.")]));
}

function signOut(message) {
  sessionStorage.removeItem("dicomnode.token");
  token = "";
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
}

$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("dicomnode.token", token);
  load();
});
if (token) load(); else signOut();
