// The page of `pixclass clean`: views of a dataset's images (by label-issue score, by loss, by
// duplicate group, by class, and sort mode), decisions by keyboard or click, undo.
// Plain browser JavaScript, no build step, no external resources. Every decision is sent to the
// server, which keeps it on disk before answering; the page holds no state the server lacks, so a
// reload shows the same thing (the view, class filter and selection are kept in sessionStorage).
"use strict";

// Cards drawn at a time ("show more" draws the next ones). Every key press redraws them: with
// 20,000 images, 120 cards took 3.3 ms per redraw and 1,200 took 16.7 ms (headless Chromium, 2-core
// CPU, DOM building only), so 120 (two screens) keeps a press well inside one frame.
const PAGE = 120;
const $ = (sel) => document.querySelector(sel);
const params = new URLSearchParams(location.search);
let token = params.get("token") || sessionStorage.getItem("pixclass-clean-token") || "";
let S = null;  // the server's state: items, classes, ...
let dupes = { status: "off", groups: [] };
let ui = Object.assign({ view: "", cls: "", split: "", hide: false, selected: null }, JSON.parse(sessionStorage.getItem("pixclass-clean-ui") || "{}"));
let shown = PAGE;
let list = [];  // the items of the current view, in order (ids)
let busy = false;
let skipped = [];  // sort mode: ids put at the end of the queue by → (this page only)
let sortFirst = null;  // sort mode: the image an undo brought back is shown first

function saveUi() { sessionStorage.setItem("pixclass-clean-ui", JSON.stringify(ui)); }
function headers(json) {
  const h = token ? { "X-Token": token } : {};
  if (json) h["Content-Type"] = "application/json";
  return h;
}
function imageUrl(item) {
  const q = new URLSearchParams({ id: item.id, v: item.location });
  if (token) q.set("token", token);
  return `api/image?${q}`;
}
function showError(message) { $("#error").textContent = message; $("#error").hidden = !message; }

async function api(method, path, body) {
  const res = await fetch(path, { method, headers: headers(body !== undefined), body: body === undefined ? undefined : JSON.stringify(body) });
  let data = {};
  try { data = await res.json(); } catch (e) { data = { error: `error ${res.status}` }; }
  if (res.status === 401) { $("#token-form").hidden = false; $("#token").focus(); }
  if (!res.ok) throw new Error(data.error || `error ${res.status}`);
  return data;
}

async function load() {
  try {
    S = await api("GET", "api/state");
  } catch (err) { showError(err.message); return; }
  showError("");
  $("#token-form").hidden = true;
  $("#root").textContent = S.root + (S.apply ? " · --apply: relabels move files" : "");
  const views = { issues: true, loss: true, dupes: true, class: true, sort: S.sort.active };
  document.querySelectorAll("#views button").forEach((b) => { b.hidden = !views[b.dataset.view]; });
  if (!ui.view || !views[ui.view]) ui.view = S.sort.active && !S.items.some((i) => !i.loose) ? "sort" : (S.label_issues.file ? "issues" : "class");
  fillClasses();
  $("#hide-decided").checked = ui.hide;
  render();
  loadDupes();
}

async function loadDupes() {
  try { dupes = await api("GET", "api/dupes"); } catch (err) { dupes = { status: "failed", error: err.message, groups: [] }; }
  if (dupes.status === "finding") setTimeout(loadDupes, 1000);
  if (ui.view === "dupes") render();
}

function fillClasses() {
  const splits = [...new Set(S.items.map(splitOf).filter(Boolean))].sort();
  $("#split-label").hidden = splits.length < 2;
  $("#split-filter").replaceChildren(new Option("all splits", ""), ...splits.map((s) => new Option(s, s)));
  $("#split-filter").value = splits.includes(ui.split) ? ui.split : "";
  ui.split = $("#split-filter").value;
  const filter = $("#class-filter");
  const keep = ui.cls;
  filter.replaceChildren(new Option("all classes", ""), ...S.classes.map((c) => new Option(c, c)));
  filter.value = S.classes.includes(keep) ? keep : "";
  ui.cls = filter.value;
}

function byId(id) { return S.items[id]; }
function splitOf(item) { return item.split || item.run_split || null; }
function matches(item) {
  if (ui.split && splitOf(item) !== ui.split) return false;
  if (ui.cls && !item.labels.includes(ui.cls) && !item.original.includes(ui.cls)) return false;
  if (ui.hide && item.status) return false;
  return true;
}

function viewItems() {
  // Returns [rows], a row being an item id or a group heading {heading}.
  const items = S.items.filter(matches);
  if (ui.view === "issues") return items.filter((i) => i.score != null).sort((a, b) => b.score - a.score || a.id - b.id).map((i) => i.id);
  if (ui.view === "loss") return items.filter((i) => i.loss != null).sort((a, b) => b.loss - a.loss || a.id - b.id).map((i) => i.id);
  if (ui.view === "dupes") {
    const rows = [];
    dupes.groups.forEach((g, n) => {
      const ids = g.ids.filter((id) => matches(byId(id)));
      if (ids.length) rows.push({ heading: `group ${n + 1}: ${g.kind}, distance ${g.distance}` }, ...ids);
    });
    return rows;
  }
  if (ui.view === "sort") {
    const ids = S.items.filter((i) => i.loose && !i.status).map((i) => i.id);
    const order = ids.filter((id) => !skipped.includes(id)).concat(skipped.filter((id) => ids.includes(id)));
    return ids.includes(sortFirst) ? [sortFirst].concat(order.filter((id) => id !== sortFirst)) : order;
  }
  return items.map((i) => i.id);
}

function notice() {
  const lines = [];
  if (!S.label_issues.file && ui.view !== "sort") {
    lines.push(`No label_issues.csv: run '${S.label_issues.command}' to rank images by how suspicious their labels are ` +
      "(and by loss). The class and duplicate views work without it.");
  }
  if (ui.view === "dupes" && dupes.status === "finding") lines.push("Looking for duplicates…");
  if (ui.view === "dupes" && dupes.status === "failed") lines.push(`Duplicates could not be found: ${dupes.error}`);
  if (ui.view === "dupes" && dupes.status === "off") lines.push("Duplicates are off (--no-dupes) and the run has no dupes.csv.");
  return lines.concat(S.notes).join(" · ");
}

function render() {
  saveUi();
  document.querySelectorAll("#views button").forEach((b) => b.classList.toggle("active", b.dataset.view === ui.view));
  const text = notice();
  $("#notice").textContent = text;
  $("#notice").hidden = !text;
  $("#undo-depth").textContent = S.undo;
  const counts = { kept: 0, relabelled: 0, trashed: 0, filed: 0 };
  S.items.forEach((i) => { if (i.status) counts[i.status] += 1; });
  $("#counts").textContent = `${S.items.length} images · ${counts.kept} kept · ${counts.relabelled} relabelled · ` +
    `${counts.trashed} trashed${counts.filed ? ` · ${counts.filed} filed` : ""} · labels in ${S.cleaned_csv}`;
  const sorting = ui.view === "sort";
  $("#board").hidden = sorting;
  $("#sorter").hidden = !sorting;
  document.querySelector(".grid-keys").hidden = sorting;
  document.querySelector(".sort-keys").hidden = !sorting;
  const rows = viewItems();
  list = rows.filter((r) => typeof r === "number");
  if (sorting) { renderSorter(); return; }
  if (ui.selected == null || !list.includes(ui.selected)) ui.selected = list.length ? list[0] : null;
  const at = list.indexOf(ui.selected);
  if (at >= shown) shown = Math.ceil((at + 1) / PAGE) * PAGE;
  const grid = $("#grid");
  const cards = [];
  let drawn = 0;
  for (const row of rows) {
    if (typeof row !== "number") { const h = document.createElement("div"); h.className = "group"; h.textContent = row.heading; cards.push(h); continue; }
    if (drawn++ >= shown) break;
    cards.push(card(byId(row)));
  }
  grid.replaceChildren(...cards);
  $("#more").hidden = list.length <= shown;
  $("#empty").hidden = list.length > 0;
  $("#empty").textContent = ui.view === "dupes" && dupes.status === "ready" && !dupes.groups.length
    ? "No duplicates found." : "No images in this view.";
  renderInspector();
}

function card(item) {
  const el = document.createElement("article");
  el.className = "card" + (item.id === ui.selected ? " selected" : "");
  el.dataset.id = item.id;
  el.dataset.name = item.key;
  el.dataset.status = item.status || "undecided";
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = item.key;
  img.src = imageUrl(item);
  const label = document.createElement("div");
  label.className = "label";
  label.textContent = item.labels.join(" ") || "(no label)";
  const meta = document.createElement("div");
  meta.className = "meta";
  const bits = [splitOf(item), item.score != null ? `score ${item.score.toFixed(2)}` : null,
    item.suggested && String(item.suggested) !== item.labels.join(" ") ? `→ ${[].concat(item.suggested).join(" ")}` : null];
  meta.textContent = bits.filter(Boolean).join(" · ") || item.key;
  meta.title = item.location;
  el.append(img, label, meta);
  if (item.status) { const b = document.createElement("span"); b.className = "badge"; b.textContent = item.status; el.append(b); }
  el.addEventListener("click", () => { ui.selected = item.id; render(); });
  return el;
}

function renderInspector() {
  const item = ui.selected == null ? null : byId(ui.selected);
  $("#inspector").hidden = !item;
  if (!item) return;
  $("#inspector").dataset.id = item.id;
  $("#big").src = imageUrl(item);
  $("#name").textContent = item.location === item.key ? item.key : `${item.key} → ${item.location}`;
  $("#labels").textContent = item.labels.join(" ") || "(no label)";
  $("#original").textContent = item.original.join(" ") || "(no label)";
  $("#status").textContent = item.status || "undecided";
  $("#suggested").textContent = item.suggested == null ? "—" : [].concat(item.suggested).join(" ");
  $("#score").textContent = item.score == null ? "—" : `${item.score.toFixed(3)} · ${item.loss == null ? "—" : item.loss.toFixed(3)}`;
  const trashed = item.status === "trashed";
  ["#keep", "#trash", "#relabel"].forEach((s) => { $(s).disabled = trashed; });
  $("#relabel-single").hidden = S.multi;
  $("#relabel-multi").hidden = !S.multi;
  if (S.multi) {
    $("#tags").replaceChildren(...S.classes.map((t, n) => {
      const l = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox"; box.value = t; box.checked = item.labels.includes(t); box.disabled = trashed;
      box.addEventListener("change", () => toggleTag(t));
      l.append(box, ` ${n < 9 ? `${n + 1} ` : ""}${t}`);
      return l;
    }));
  } else {
    const sel = $("#relabel");
    sel.replaceChildren(...S.classes.map((c, n) => new Option(`${n < 9 ? `${n + 1}: ` : ""}${c}`, c)));
    sel.value = item.labels[0] || "";
  }
}

function next(step) {
  const at = list.indexOf(ui.selected);
  const to = Math.min(Math.max(at + step, 0), list.length - 1);
  if (to >= 0) ui.selected = list[to];
  render();
  const el = document.querySelector(`.card[data-id="${ui.selected}"]`);
  if (el) el.scrollIntoView({ block: "nearest" });
}

async function decide(id, action, labels) {
  if (busy || id == null) return;
  busy = true;
  try {
    const at = list.indexOf(id);
    const answer = await api("POST", "api/decide", { item: id, action, labels });
    apply(answer);
    const rows = viewItems().filter((r) => typeof r === "number");
    // Move on to the next item of the view (the decided one may have left it).
    ui.selected = rows.includes(id) && at + 1 < rows.length ? rows[at + 1] : (rows[Math.min(at, rows.length - 1)] ?? null);
    if (action === "relabel" && S.multi) ui.selected = id;  // tags are toggled one by one
    showError("");
  } catch (err) { showError(err.message); }
  busy = false;
  render();
}

async function undo() {
  if (busy) return;
  busy = true;
  try {
    const answer = await api("POST", "api/undo");
    apply(answer);
    if (ui.view === "sort") sortFirst = answer.item.id; else ui.selected = answer.item.id;
    showError("");
  } catch (err) { showError(err.message); }
  busy = false;
  render();
}

function apply(answer) {
  S.items[answer.item.id] = Object.assign(S.items[answer.item.id], answer.item);
  S.undo = answer.undo;
  if (answer.classes.length !== S.classes.length) { S.classes = answer.classes; fillClasses(); }
}

function relabelTo(label) {
  const item = byId(ui.selected);
  if (item && label) decide(item.id, "relabel", [label]);
}

function toggleTag(tag) {
  const item = byId(ui.selected);
  if (!item) return;
  const tags = item.labels.includes(tag) ? item.labels.filter((t) => t !== tag) : item.labels.concat([tag]);
  decide(item.id, "relabel", tags);
}

function renderSorter() {
  const id = list.length ? list[0] : null;
  ui.selected = id;
  $("#sort-left").textContent = `${list.length} images left to sort`;
  const item = id == null ? null : byId(id);
  $("#sort-image").hidden = !item;
  $("#sorter").dataset.id = item ? item.id : "";
  if (item) $("#sort-image").src = imageUrl(item);
  $("#sort-name").textContent = item ? item.key : "Nothing left to sort.";
  $("#sort-classes").replaceChildren(...S.sort.classes.map((c, n) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.innerHTML = n < 9 ? `<kbd>${n + 1}</kbd>` : "";
    b.append(c);
    b.addEventListener("click", () => fileInto(c));
    li.append(b);
    return li;
  }), (() => { const li = document.createElement("li"); const b = document.createElement("button"); b.className = "bad";
    b.innerHTML = "<kbd>x</kbd>trash"; b.addEventListener("click", () => decide(ui.selected, "trash")); li.append(b); return li; })());
}

function openRelabel() {
  // The open menu: arrows move within it and only Enter relabels (a focused closed <select>
  // would relabel at every arrow key).
  const sel = $("#relabel");
  sel.focus();
  try { sel.showPicker(); } catch (e) { /* older browsers: the focused menu */ }
}

function fileInto(cls) { if (ui.selected != null) decide(ui.selected, "file", [cls]); }

document.addEventListener("keydown", (ev) => {
  if (!S || ev.target.closest("input, select, textarea")) return;
  if (ev.altKey || ev.metaKey) return;
  const key = ev.key;
  if ((key === "z" && ev.ctrlKey) || (key === "u" && !ev.ctrlKey)) { ev.preventDefault(); undo(); return; }
  if (ev.ctrlKey) return;
  const digit = /^[1-9]$/.test(key) ? Number(key) - 1 : -1;
  if (ui.view === "sort") {
    if (digit >= 0 && digit < S.sort.classes.length) fileInto(S.sort.classes[digit]);
    else if (key === "x" || key === "Delete" || key === "Backspace") decide(ui.selected, "trash");
    else if (key === "ArrowRight") skipSort();
    else return;
    ev.preventDefault();
    return;
  }
  if (key === "ArrowRight" || key === "j") next(1);
  else if (key === "ArrowLeft" || key === "k") next(-1);
  else if (key === "Enter" || key === " ") decide(ui.selected, "keep");
  else if (key === "x" || key === "Delete" || key === "Backspace") decide(ui.selected, "trash");
  else if (key === "r" && !S.multi) openRelabel();
  else if (digit >= 0 && digit < S.classes.length) S.multi ? toggleTag(S.classes[digit]) : relabelTo(S.classes[digit]);
  else return;
  ev.preventDefault();
});

function skipSort() {
  if (ui.selected != null) skipped = skipped.filter((id) => id !== ui.selected).concat([ui.selected]);
  if (sortFirst === ui.selected) sortFirst = null;
  render();
}

document.querySelectorAll("#views button").forEach((b) => b.addEventListener("click", () => { ui.view = b.dataset.view; ui.selected = null; shown = PAGE; render(); }));
$("#class-filter").addEventListener("change", (ev) => { ui.cls = ev.target.value; shown = PAGE; render(); });
$("#split-filter").addEventListener("change", (ev) => { ui.split = ev.target.value; shown = PAGE; render(); });
$("#hide-decided").addEventListener("change", (ev) => { ui.hide = ev.target.checked; render(); });
$("#undo").addEventListener("click", undo);
$("#keep").addEventListener("click", () => decide(ui.selected, "keep"));
$("#trash").addEventListener("click", () => decide(ui.selected, "trash"));
$("#relabel").addEventListener("change", (ev) => { relabelTo(ev.target.value); ev.target.blur(); });
$("#new-class").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const name = $("#new-class-name").value.trim();
  if (!name) return;
  const item = byId(ui.selected);
  if (!item) return;
  $("#new-class-name").value = "";
  if (S.multi) decide(item.id, "relabel", item.labels.concat([name]));
  else relabelTo(name);
});
$("#more").addEventListener("click", () => { shown += PAGE; render(); });
$("#token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("#token").value.trim();
  sessionStorage.setItem("pixclass-clean-token", token);
  load();
});
if (params.get("token")) sessionStorage.setItem("pixclass-clean-token", token);
load();
