// The live view's script: reads GET /live/stream (server-sent events) and draws the answer pass by pass, each slot
// coloured by the forward that committed it (the #scale legend), edits outlined with the old token as the title,
// nothing after the first committed stop (hidden), one TPF label; on done only the answer's ids stay shown.
// Entry points: start (the form's submit; ?autorun=1 submits at once), onPass, onDone.
"use strict";
const $ = (id) => document.getElementById(id);
const HUE_FIRST = 230;
let source = null;
function hue(pass, last) { return Math.round(HUE_FIRST * (1 - (pass - 1) / Math.max(last - 1, 1))); }
function colour(pass, last) { return `hsl(${hue(pass, last)}, 75%, 80%)`; }
function slotsFor(n) {
  const canvas = $("canvas");
  canvas.textContent = "";
  const slots = [];
  for (let i = 0; i < n; i++) {
    const span = document.createElement("span");
    span.className = "slot masked";
    span.textContent = "\u2588";
    canvas.appendChild(span);
    slots.push(span);
  }
  return slots;
}
function commit(span, text, pass, old) {
  span.textContent = text;
  span.dataset.pass = pass;
  if (old === undefined) {
    delete span.dataset.old;
    span.title = `pass ${pass}`;
  } else {
    span.dataset.old = old;
    span.title = `pass ${pass}: edited, was ${JSON.stringify(old)}`;
  }
}
function unmask(span) {
  span.textContent = "\u2588";
  delete span.dataset.pass; delete span.dataset.old;
  span.title = "";
}
function paint(slots, last, stop, shown) {
  slots.forEach((span, i) => {
    const cls = ["slot"];
    if (span.dataset.pass === undefined) cls.push("masked");
    if (span.dataset.old !== undefined) cls.push("edited");
    if (stop !== null && i === stop) cls.push("stop");
    if (i >= shown) cls.push("after");
    span.className = cls.join(" ");
    span.style.background = span.dataset.pass === undefined ? "" : colour(Number(span.dataset.pass), last);
  });
  const stops = [0, 0.25, 0.5, 0.75, 1].map((f) => `hsl(${Math.round(HUE_FIRST * (1 - f))}, 75%, 80%)`);
  $("scale").style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  $("last").textContent = `pass ${last}`;
}
function params() {
  const q = new URLSearchParams({prompt: $("prompt").value, mode: $("mode").value,
    max_new_tokens: $("max_new_tokens").value, seed: $("seed").value, chat: $("chat").checked});
  for (const key of ["tau_mask", "tau_edit", "temperature"]) { if ($(key).value !== "") q.set(key, $(key).value); }
  if ($("remask").checked) q.set("remask", "true");
  return q;
}
function onPass(slots, p) {
  for (const u of p.unmasked) { if (u.i >= 0 && u.i < slots.length) commit(slots[u.i], u.text, p.forwards); }
  for (const d of p.edited) { if (d.i >= 0 && d.i < slots.length) commit(slots[d.i], d.new, p.forwards, d.old); }
  for (const r of p.remasked || []) { if (r.i >= 0 && r.i < slots.length) unmask(slots[r.i]); }
  paint(slots, p.forwards, p.stop, p.stop === null ? slots.length : p.stop + 1);
  $("passes").textContent = p.forwards; $("masks").textContent = p.masks_left; $("kept").textContent = p.kept;
  $("block").textContent = p.phase === "remask" ? (p.block === null ? "remask" : "remask " + p.block) : p.block;
  $("tpf").textContent = p.tpf.toFixed(2);
  return p.edited.length;
}
function onDone(slots, d, last) {
  const stopped = d.finish_reason === "stop" && d.ids.length > 0;
  paint(slots, last, stopped ? d.ids.length - 1 : null, d.ids.length);
  $("answer").textContent = d.text;
  $("kept").textContent = d.stats.tokens; $("tpf").textContent = d.stats.tpf.toFixed(2);
  $("stats").textContent = `forwards ${d.stats.forwards} · refreshes ${d.stats.refreshes} · ` +
    `tokens ${d.stats.tokens} · ${d.stats.tokens_per_s.toFixed(1)} tokens/s · ${d.finish_reason}`;
  $("ask").dataset.state = "done";
}
function start(event) {
  event.preventDefault();
  if (source) source.close();
  $("answer").textContent = ""; $("stats").textContent = ""; $("passes").textContent = "0"; $("edits").textContent = "0";
  $("ask").dataset.state = "running";
  let slots = [], edits = 0, last = 1;
  source = new EventSource("/live/stream?" + params().toString());
  source.addEventListener("start", (e) => { slots = slotsFor(JSON.parse(e.data).max_new_tokens); });
  source.addEventListener("pass", (e) => {
    const p = JSON.parse(e.data);
    edits += onPass(slots, p); last = p.forwards;
    $("edits").textContent = edits;
  });
  source.addEventListener("done", (e) => { onDone(slots, JSON.parse(e.data), last); source.close(); });
  source.addEventListener("error", (e) => {
    if (e.data) $("stats").textContent = "error: " + JSON.parse(e.data).detail;
    source.close();
  });
}
$("ask").addEventListener("submit", start);
const preset = new URLSearchParams(window.location.search);
for (const key of ["prompt", "mode", "tau_mask", "tau_edit", "max_new_tokens", "seed", "temperature"]) {
  if (preset.has(key)) $(key).value = preset.get(key);
}
if (preset.get("remask") === "true") $("remask").checked = true;
if (preset.get("autorun") === "1") $("ask").requestSubmit();
