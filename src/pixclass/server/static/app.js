// The upload page of `pixclass serve`: pick or drop images, preview them, show each prediction.
// Plain browser JavaScript, no build step, no external resources. One request per image (the
// server batches concurrent ones), at most PARALLEL at a time, so one bad file never hides the others.
"use strict";

const PARALLEL = 4;
const $ = (sel) => document.querySelector(sel);
let apiKey = sessionStorage.getItem("pixclass-key") || "";
let limits = { max_files: 32, max_file_bytes: 32 * 1024 * 1024 };

function headers() {
  return apiKey ? { "X-API-Key": apiKey } : {};
}

async function loadInfo() {
  const res = await fetch("/info", { headers: headers() });
  if (res.status === 401) { askForKey(); $("#model").textContent = "an API key is needed to use this server"; return; }
  if (res.status === 503) { $("#model").textContent = "the model is loading…"; setTimeout(loadInfo, 1000); return; }
  const info = await res.json();
  if (!res.ok) { $("#model").textContent = info.error || `error ${res.status}`; return; }
  const n = (info.classes || []).length;
  const kind = { single: "classes", multi: "tags", regression: "regression" }[info.task] || info.task;
  $("#model").textContent = `${info.arch} · ${info.task === "regression" ? kind : `${n} ${kind}`} · ` +
    `${info.input_size} px · ${info.runtime}`;
  if (info.server) {
    limits = info.server;
    $("#limits").textContent = `up to ${limits.max_file_bytes / 1048576} MiB per image`;
  }
}

function askForKey() {
  $("#key-form").hidden = false;
  $("#key").focus();
}

$("#key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  apiKey = $("#key").value.trim();
  sessionStorage.setItem("pixclass-key", apiKey);
  $("#key-form").hidden = true;
  loadInfo();
});

function makeCard(file) {
  const card = $("#card").content.firstElementChild.cloneNode(true);
  card.classList.add("pending");
  card.dataset.file = file.name;
  const img = card.querySelector("img");
  img.onerror = () => img.classList.add("none");  // a file the browser cannot show either
  img.src = URL.createObjectURL(file);
  img.alt = file.name;
  card.querySelector(".file").textContent = file.name;
  card.querySelector(".label").textContent = "predicting…";
  return card;
}

function percent(p) {
  return p === null || p === undefined ? "" : `${(100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1)}%`;
}

function showPrediction(card, pred) {
  card.classList.remove("pending");
  const label = Array.isArray(pred.label) ? (pred.label.length ? pred.label.join(", ") : "(no tag)")
    : typeof pred.label === "number" ? pred.label.toPrecision(4) : String(pred.label);
  card.querySelector(".label").textContent = label;
  card.querySelector(".prob").textContent = percent(pred.prob);
  const bars = card.querySelector(".bars");
  for (const t of pred.top || []) {
    const li = document.createElement("li");
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${Math.max(0, Math.min(1, t.prob)) * 100}%`;
    const name = document.createElement("em");
    name.textContent = t.label;
    bar.append(fill, name);
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = percent(t.prob);
    li.append(bar, pct);
    bars.append(li);
  }
}

function showError(card, message) {
  card.classList.remove("pending");
  card.classList.add("failed");
  card.querySelector(".label").textContent = "—";
  card.querySelector(".error").textContent = message;
}

async function predict(file, card) {
  if (file.size > limits.max_file_bytes) {
    showError(card, `larger than the server's limit of ${limits.max_file_bytes / 1048576} MiB`);
    return;
  }
  const body = new FormData();
  body.append("file", file, file.name);
  try {
    const res = await fetch("/predict", { method: "POST", body, headers: headers() });
    const answer = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
    if (res.status === 401) askForKey();
    if (!res.ok) { showError(card, answer.error || `HTTP ${res.status}`); return; }
    showPrediction(card, answer.predictions[0]);
  } catch (err) {
    showError(card, `no answer from the server (${err.message})`);
  }
}

async function handle(fileList) {
  const files = Array.from(fileList).filter((f) => f.size >= 0);
  if (!files.length) return;
  const queue = files.map((f) => [f, makeCard(f)]);
  $("#results").prepend(...queue.map(([, card]) => card));  // newest upload first, in the order chosen
  $("#status").textContent = `predicting ${files.length} image${files.length > 1 ? "s" : ""}…`;
  const started = performance.now();
  const worker = async () => { while (queue.length) { const [f, c] = queue.shift(); await predict(f, c); } };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, files.length) }, worker));
  const secs = ((performance.now() - started) / 1000).toFixed(2);
  $("#status").textContent = `${files.length} image${files.length > 1 ? "s" : ""} in ${secs} s`;
}

const drop = $("#drop");
$("#files").addEventListener("change", (ev) => { handle(ev.target.files); ev.target.value = ""; });
drop.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") $("#files").click(); });
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (ev) => { ev.preventDefault(); drop.classList.add("over"); });
}
for (const type of ["dragleave", "drop"]) {
  drop.addEventListener(type, () => drop.classList.remove("over"));
}
drop.addEventListener("drop", (ev) => { ev.preventDefault(); handle(ev.dataTransfer.files); });
// A file dropped next to the drop zone must not navigate away from the page.
window.addEventListener("dragover", (ev) => ev.preventDefault());
window.addEventListener("drop", (ev) => ev.preventDefault());

loadInfo();
