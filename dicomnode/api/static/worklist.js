"use strict";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("dicomnode.token") || "";
let items = [];
let reader = null;
let streamAbort = null;
let refreshTimer = null;
let sortKey = "rank", sortDir = 1;
let armed = null;  // the uid whose Complete button asks for confirmation
let undoTimer = null;
const UNDO_SECONDS = 60;
const PRIORITY_ORDER = {STAT: 0, HIGH: 1, ROUTINE: 2, LOW: 3};

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

function local(iso) {
  return iso ? new Date(iso).toLocaleString([], {year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", timeZoneName: "short"}) : "";
}

async function api(path, options = {}) {
  const response = await fetch(path, {...options, headers: {...(options.headers || {}), Authorization: "Bearer " + token}});
  if (response.status === 401) { signOut("That token was not accepted."); throw new Error("unauthorised"); }
  return response;
}

function signOut(reason) {
  token = ""; sessionStorage.removeItem("dicomnode.token");
  if (streamAbort) streamAbort.abort();
  $("app").hidden = true; $("signin").hidden = false; $("signin-error").textContent = reason || "";
}

function waiting(item) {
  const minutes = Math.max(0, (Date.now() - Date.parse(item.arrived_at)) / 60000);
  if (minutes < 60) return Math.round(minutes) + " min";  // rounded, as the server's explanations are
  const hours = Math.floor(minutes / 60);
  return hours + " h " + Math.floor(minutes % 60) + " min";
}

function flagText(flag) {
  return "AI: " + flag.label + " " + Math.round(flag.probability * 100) + "%";
}

const AI_STATUS = {negative: "AI: nothing found", pending: "AI: pending", failed: "AI failed: not analysed",
  out_of_scope: "AI: out of scope", not_analysed: "AI: not analysed"};

function aiStatus(item) {
  if (item.ai_status === "flagged" || !AI_STATUS[item.ai_status]) return "";
  return `<span class="badge s-${esc(item.ai_status)}" data-ai-status="${esc(item.ai_status)}">${AI_STATUS[item.ai_status]}</span>`;
}

function conflict(item) {
  if (!item.identity_conflict) return "";
  return ` <span class="badge conflict" title="Another study names this patient ID with a different name or birth date: check the images before reading">identity conflict</span>`;
}

function opinion(item, flag) {
  const mine = (item.feedback || []).find((o) => o.reader === reader && o.label === flag.label && o.result_uid === flag.result_uid);
  const buttons = ["agree", "disagree", "unsure"].map((v) =>
    `<button class="fb${mine && mine.verdict === v ? " chosen" : ""}" data-act="feedback" data-verdict="${v}" aria-pressed="${Boolean(mine && mine.verdict === v)}"
       aria-label="${v} with AI ${esc(flag.label)}" data-label="${esc(flag.label)}" data-result="${esc(flag.result_uid)}">${v}</button>`).join("");
  return `<span class="opinion">${buttons}</span>`;
}

function actions(item) {
  let html = "";
  const mine = item.claimed_by === reader;
  if (item.state === "SCHEDULED") html = `<button class="primary" data-act="claim">Claim</button>`;
  else if (item.state === "IN PROGRESS" && mine) {
    html = armed === item.uid
      ? `<button class="confirm" data-act="complete">Confirm: complete</button> <button data-act="keep">Not yet</button>`
      : `<button class="primary" data-act="arm">Complete</button> <button data-act="release">Release</button>`;
  } else if (item.state === "COMPLETED" && mine && Date.now() - Date.parse(item.closed_at) < UNDO_SECONDS * 1000) {
    html = `<button data-act="reopen">Undo complete</button>`;
  }
  if (item.viewer_url) html += ` <a class="open" href="${esc(item.viewer_url)}" target="_blank" rel="noopener noreferrer">Open images</a>`;
  return html;
}

function row(item) {
  const flags = item.flags.map((f) => `<span class="badge ai" title="${esc(f.model + " " + f.model_version)}">${esc(flagText(f))}</span>${opinion(item, f)}`).join("");
  const keys = item.flags.filter((f) => f.finding_index !== undefined).map((f) =>
    `<img class="key" alt="Key image: ${esc(f.label)} (AI output, not for diagnostic use)" title="Click to enlarge"
      data-src="/api/worklist/${encodeURIComponent(item.uid)}/key-image/${encodeURIComponent(f.result_uid)}/${f.finding_index}.png">`).join("");
  const disclaimer = item.flags.length ? `<div class="disclaimer">AI output, not for diagnostic use</div>` : "";
  const overdue = item.overdue_minutes > 0 ? `<span class="badge overdue">overdue</span>` : "";
  const status = item.state === "IN PROGRESS" ? `Reading: ${esc(item.claimed_by)}`
    : item.closed_at ? `${esc(item.state.toLowerCase())} by ${esc(item.claimed_by)}, ${esc(local(item.closed_at))}` : esc(item.state.toLowerCase());
  return `<tr data-uid="${esc(item.uid)}" class="${item.flagged ? "flagged" : ""}" tabindex="0">
    <td class="rank">${item.rank ?? ""}</td>
    <td data-label="Priority"><span class="badge p-${esc(item.priority)}">${esc(item.priority)}</span>${overdue}</td>
    <td data-label="Patient">${esc(item.patient_name.replace(/\^/g, " "))}${conflict(item)}<div class="muted">${esc(item.patient_id)}</div></td>
    <td data-label="Study">${flags}${aiStatus(item)}${keys}${disclaimer}<div>${esc(item.description || "(no description)")}</div><div class="muted">${esc(item.modalities)} · Acc ${esc(item.accession_number)}</div></td>
    <td data-label="Waiting" class="waiting" title="arrived ${esc(local(item.arrived_at))}">${waiting(item)}</td>
    <td class="why">${esc(item.explanation)} <a href="#" data-act="history">history</a><div class="history" hidden></div></td>
    <td data-label="Status">${status}</td>
    <td class="actions">${actions(item)}</td></tr>`;
}

const SORTS = {
  rank: (i) => i.rank ?? Infinity,
  priority: (i) => PRIORITY_ORDER[i.priority] ?? 9,
  patient: (i) => i.patient_name.toLowerCase(),
  study: (i) => (i.description || "").toLowerCase(),
  waiting: (i) => Date.parse(i.arrived_at),
  status: (i) => i.state + (i.claimed_by || ""),
};

function sorted() {
  const key = SORTS[sortKey];
  return [...items].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * sortDir);
}

const keyImages = new Map();  // data-src -> object URL: fetched once, with the reader's token

async function loadKeyImages() {
  for (const img of document.querySelectorAll("img.key[data-src]")) {
    const src = img.dataset.src;
    if (!keyImages.has(src)) {
      const response = await api(src).catch(() => null);
      keyImages.set(src, response && response.ok ? URL.createObjectURL(await response.blob()) : "");
    }
    if (keyImages.get(src)) img.src = keyImages.get(src); else img.hidden = true;
  }
}

function render() {
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("tr[data-uid]");
  const keep = focused ? focused.dataset.uid : null;
  $("items").innerHTML = sorted().map(row).join("");
  $("empty").hidden = items.length > 0;
  $("empty").textContent = $("view").value === "completed" ? "Nothing completed yet." : "No studies waiting.";
  if (keep) { const again = document.querySelector(`tr[data-uid="${CSS.escape(keep)}"]`); if (again) again.focus(); }
  loadKeyImages();
}

async function load() {
  const completed = $("view").value === "completed";
  const params = new URLSearchParams({order: $("order").value, limit: completed ? "100" : "500", state: completed ? "completed" : "open"});
  if ($("modality").value.trim()) params.set("modality", $("modality").value.trim());
  if ($("search").value.trim()) params.set("q", $("search").value.trim());
  if ($("flagged").checked) params.set("flagged", "true");
  const response = await api("/api/worklist?" + params);
  if (!response.ok) { $("message").textContent = "Could not load the worklist (" + response.status + ")."; return; }
  const body = await response.json();
  items = body.items;
  $("count").textContent = body.total + (completed ? " completed" : " open");
  $("message").textContent = "";
  render();
}

function scheduleLoad() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => load().catch(() => {}), 30);
}

async function follow() {
  // Server-sent events read with fetch, so the token travels in a header and never in a URL.
  while (token) {
    streamAbort = new AbortController();
    try {
      const response = await api("/api/worklist/events", {signal: streamAbort.signal});
      if (!response.ok) throw new Error("events " + response.status);
      $("live").className = "live on"; $("live").textContent = "live";
      const stream = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const {value, done} = await stream.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
          if (message.startsWith("event: changed")) scheduleLoad();
        }
      }
    } catch (error) {
      if (!token) return;
    }
    $("live").className = "live off"; $("live").textContent = "reconnecting…";
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function act(uid, action) {
  const response = await api(`/api/worklist/${encodeURIComponent(uid)}/${action}`, {method: "POST"});
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    $("message").textContent = body.detail || ("That did not work (" + response.status + ").");
  } else if (action === "complete") offerUndo(uid);
  else if (action === "reopen") $("undo").hidden = true;
  await load();
}

function offerUndo(uid) {
  const item = items.find((i) => i.uid === uid);
  const what = item ? `${item.patient_name.replace(/\^/g, " ")}, ${item.description || item.modalities}` : "the study";
  $("undo").innerHTML = `Completed: ${esc(what)}. <button data-undo="${esc(uid)}">Undo</button> <span class="muted">(for ${UNDO_SECONDS} s)</span>`;
  $("undo").hidden = false;
  clearTimeout(undoTimer);
  undoTimer = setTimeout(() => { $("undo").hidden = true; }, UNDO_SECONDS * 1000);
}

async function giveFeedback(uid, button) {
  const body = {result_uid: button.dataset.result, label: button.dataset.label, verdict: button.dataset.verdict};
  const response = await api(`/api/worklist/${encodeURIComponent(uid)}/feedback`,
    {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  if (!response.ok) $("message").textContent = "Feedback not recorded (" + response.status + ").";
  await load();
}

async function showHistory(uid, box) {
  const response = await api(`/api/worklist/${encodeURIComponent(uid)}`);
  const body = await response.json();
  box.innerHTML = body.history.map((e) => `${esc(local(e.at))} ${esc(e.event)}: ${e.old_rank ?? "–"} → ${e.new_rank ?? "–"} (${esc(e.reason)})`).join("<br>");
  box.hidden = !box.hidden;
}

$("items").addEventListener("click", (event) => {
  if (event.target.matches("img.key")) { event.target.classList.toggle("big"); return; }
  const target = event.target.closest("[data-act]");
  if (!target) return;
  event.preventDefault();
  const uid = target.closest("tr").dataset.uid;
  const what = target.dataset.act;
  if (what === "history") showHistory(uid, target.nextElementSibling);
  else if (what === "feedback") giveFeedback(uid, target);
  else if (what === "arm") { armed = uid; render(); document.querySelector(`tr[data-uid="${CSS.escape(uid)}"] button.confirm`).focus(); }
  else if (what === "keep") { armed = null; render(); }
  else { if (what === "complete") armed = null; act(uid, what); }
});
$("items").addEventListener("keydown", (event) => {
  const tr = event.target.closest("tr[data-uid]");
  if (!tr || event.target !== tr) return;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    const next = event.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
    if (next) next.focus();
    event.preventDefault();
  } else if (event.key === "Enter") {
    showHistory(tr.dataset.uid, tr.querySelector(".history")); event.preventDefault();
  } else if (event.key === "c") {
    const claim = tr.querySelector("button[data-act=claim]");
    if (claim) act(tr.dataset.uid, "claim");
  }
});
$("undo").addEventListener("click", (event) => {
  const uid = event.target.dataset && event.target.dataset.undo;
  if (uid) act(uid, "reopen");
});
document.querySelector("thead").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-sort]");
  if (!button) return;
  sortDir = sortKey === button.dataset.sort ? -sortDir : 1;
  sortKey = button.dataset.sort;
  for (const th of document.querySelectorAll("thead th")) th.removeAttribute("aria-sort");
  button.parentElement.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
  render();
});
for (const id of ["order", "flagged", "view"]) $(id).addEventListener("change", load);
for (const id of ["modality", "search"]) $(id).addEventListener("input", scheduleLoad);
$("signout").addEventListener("click", () => signOut(""));
$("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("dicomnode.token", token);
  start();
});
setInterval(() => { for (const cell of document.querySelectorAll("td.waiting")) { const item = items.find((i) => i.uid === cell.parentElement.dataset.uid); if (item) cell.textContent = waiting(item); } }, 30000);
setInterval(() => { if (token) load().catch(() => {}); }, 60000);

async function start() {
  if (!token) { signOut(""); return; }
  try {
    const me = await api("/api/me");
    reader = (await me.json()).reader;
  } catch (error) { return; }
  $("signin").hidden = true; $("app").hidden = false;
  await load();
  follow();
}
start();
