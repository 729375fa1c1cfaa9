"use strict";
const $ = (id) => document.getElementById(id);
let source = null;
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
function mark(span, text, cls) {
  span.textContent = text;
  span.className = "slot " + cls;
  setTimeout(() => { span.className = "slot settled"; }, 900);
}
function params() {
  const q = new URLSearchParams({prompt: $("prompt").value, mode: $("mode").value,
    max_new_tokens: $("max_new_tokens").value, seed: $("seed").value, chat: $("chat").checked});
  for (const key of ["tau_mask", "tau_edit", "temperature"]) { if ($(key).value !== "") q.set(key, $(key).value); }
  if ($("remask").checked) q.set("remask", "true");
  return q;
}
function start(event) {
  event.preventDefault();
  if (source) source.close();
  $("answer").textContent = ""; $("stats").textContent = ""; $("passes").textContent = "0"; $("edits").textContent = "0";
  let slots = [], edits = 0;
  source = new EventSource("/live/stream?" + params().toString());
  source.addEventListener("start", (e) => { slots = slotsFor(JSON.parse(e.data).max_new_tokens); });
  source.addEventListener("pass", (e) => {
    const p = JSON.parse(e.data);
    for (const u of p.unmasked) { if (u.i >= 0 && u.i < slots.length) mark(slots[u.i], u.text, "new"); }
    for (const d of p.edited) { if (d.i >= 0 && d.i < slots.length) { mark(slots[d.i], d.new, "edited"); edits++; } }
    for (const r of p.remasked || []) { if (r.i >= 0 && r.i < slots.length) { slots[r.i].textContent = "\u2588"; slots[r.i].className = "slot masked"; } }
    $("passes").textContent = p.forwards; $("masks").textContent = p.masks_left;
    $("block").textContent = p.phase === "remask" ? (p.block === null ? "remask" : "remask " + p.block) : p.block;
    $("tpf").textContent = p.tpf.toFixed(2); $("edits").textContent = edits;
  });
  source.addEventListener("done", (e) => {
    const d = JSON.parse(e.data);
    $("answer").textContent = d.text;
    $("stats").textContent = `forwards ${d.stats.forwards} · tokens ${d.stats.tokens} · TPF ${d.stats.tpf.toFixed(2)} · ${d.stats.tokens_per_s.toFixed(1)} tokens/s · ${d.finish_reason}`;
    source.close();
  });
  source.addEventListener("error", (e) => {
    if (e.data) $("stats").textContent = "error: " + JSON.parse(e.data).detail;
    source.close();
  });
}
$("ask").addEventListener("submit", start);
const preset = new URLSearchParams(window.location.search);
for (const key of ["prompt", "mode", "tau_mask", "tau_edit", "max_new_tokens", "seed", "temperature"]) { if (preset.has(key)) $(key).value = preset.get(key); }
if (preset.get("remask") === "true") $("remask").checked = true;
if (preset.get("autorun") === "1") $("ask").requestSubmit();
