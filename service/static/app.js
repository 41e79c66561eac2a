// The DAE page's logic. Plain browser JavaScript (no build step, no libraries); it talks to the public API only:
//   GET /v2 and /v2/models/{name}   which model, its variant, classes and outputs
//   POST /encode                    an image -> its latent code (and predicted class)
//   POST /decode                    a code (+ chosen class) -> texture, deformation picture, reconstruction
//   POST /swap                      shape of one image + appearance of the other
//   GET /interpolate                frames between two codes, moving shape, appearance or both
// Every failure is shown in plain words in #error (with the API's own message and request id underneath).
"use strict";

const state = {
  model: null,          // /v2/models/{name}
  outputs: [],          // the picture panels this model has, e.g. texture, warped_grid, reconstruction
  token: sessionStorage.getItem("dae-token") || "",
  slots: {},            // "A" / "B" -> {blob, code, label, el}
  frames: [],           // interpolation frames (JSON items)
  timer: null,
};

// Plain words per stable error code (the API's message is shown underneath as detail).
const PLAIN = {
  image_undecodable: "That file is not an image the service can read. Use a PNG, JPEG, WebP or GIF picture.",
  image_truncated: "That image file is incomplete or damaged.",
  image_empty: "That file is empty.",
  body_empty: "Nothing was sent: the file is empty.",
  unsupported_image_mode: "That image uses a colour format the service does not accept.",
  image_too_large: "That image has too many pixels for this service.",
  body_too_large: "That file is too big for this service.",
  too_many_images: "Too many images at once.",
  queue_full: "The service is busy right now. Try again in a moment.",
  not_ready: "The model is still loading. Try again in a few seconds.",
  draining: "The service is shutting down.",
  deadline_exceeded: "The service took too long to answer. Try again.",
  auth_required: "This service needs an access token. Enter it above the images.",
  auth_invalid: "That access token was not accepted.",
  code_foreign_model: "These latents come from another model: load the images again.",
  class_unknown: "This model has no such class.",
  steps_out_of_range: "That number of frames is not allowed.",
  unreachable: "The service cannot be reached. Is it still running?",
  bad_response: "The service sent an answer the page cannot read.",
};

class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status; this.code = code; this.requestId = requestId;
  }
}

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.token) headers.set("Authorization", "Bearer " + state.token);
  let r;
  try {
    r = await fetch(path, { ...options, headers });
  } catch (e) {
    throw new ApiError(0, "unreachable", String(e && e.message || e), null);
  }
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const err = body && body.error ? body.error : {};
    throw new ApiError(r.status, err.code || "http_" + r.status, err.message || r.statusText,
                       err.request_id || r.headers.get("X-Request-ID"));
  }
  if (body === null) throw new ApiError(r.status, "bad_response", "not JSON", r.headers.get("X-Request-ID"));
  return body;
}

function showError(err, what) {
  const box = $("#error");
  const code = err instanceof ApiError ? err.code : "page_error";
  const plain = PLAIN[code] || (err instanceof ApiError && err.status >= 500
    ? "The service had a problem answering." : "The service refused the request.");
  $("#error-title").textContent = what ? `Could not ${what}.` : "Something went wrong.";
  $("#error-text").textContent = plain;
  const bits = [];
  if (err.message) bits.push(err.message);
  if (err instanceof ApiError) {
    bits.push(`code ${err.code}` + (err.status ? `, HTTP ${err.status}` : ""));
    if (err.requestId) bits.push(`request ${err.requestId}`);
  }
  $("#error-detail").textContent = bits.join(" · ");
  box.dataset.code = code;
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
  if (code === "auth_required" || code === "auth_invalid") $("#auth").hidden = false;
}

function clearError() { $("#error").hidden = true; delete $("#error").dataset.code; }

const pngSrc = (entry) => (entry && entry.png ? "data:image/png;base64," + entry.png : "");

function fillPanels(root, outputs) {
  for (const fig of $$(".panel", root)) {
    const name = fig.dataset.panel;
    if (name === "input") continue;
    const img = $("img", fig);
    const src = outputs ? pngSrc(outputs[name]) : "";
    if (src) img.src = src; else img.removeAttribute("src");
  }
}

function outputsParam() { return state.outputs.join(","); }

function chosenClass() {
  const v = $("#class-select").value;
  return v === "" ? null : v;
}

// -- model -------------------------------------------------------------------------------------------------------
async function loadModel() {
  const el = $("#model");
  try {
    const server = await api("/v2");
    const name = server.models && server.models[0];
    if (!name) throw new ApiError(503, "not_ready", "no model loaded", null);
    const m = await api(`/v2/models/${encodeURIComponent(name)}`);
    state.model = m;
    const have = new Set(m.outputs_available);
    state.outputs = ["texture", "warped_grid", "reconstruction", "albedo", "shading"].filter((n) => have.has(n));
    const classes = m.class_names || [];
    $("#model-text").textContent = `${m.name} · ${m.variant} · ${m.image_size}×${m.image_size}` +
      (classes.length ? ` · ${classes.length} classes` : "");
    el.dataset.state = "ready";
    if (classes.length && m.variant === "class-aware") {
      const sel = $("#class-select");
      classes.forEach((c, i) => sel.add(new Option(c, String(i))));
      $("#class-control").hidden = false;
      $("#controls").hidden = false;
    }
    for (const fig of $$('.panel[data-panel="albedo"], .panel[data-panel="shading"]')) fig.hidden = !have.has(fig.dataset.panel);
    if (!have.has("warped_grid")) {
      for (const fig of $$('.panel[data-panel="warped_grid"]')) $("figcaption", fig).textContent = "Deformation (none)";
    }
  } catch (err) {
    el.dataset.state = "error";
    $("#model-text").textContent = "no model";
    showError(err, "load the model");
  }
}

// -- one image slot (A or B) -------------------------------------------------------------------------------------
async function setImage(key, blob, label) {
  const slot = state.slots[key];
  const el = slot.el;
  clearError();
  el.dataset.state = "loading";
  $(".source-name", el).textContent = label;
  const input = $('.panel[data-panel="input"] img', el);
  if (slot.url) URL.revokeObjectURL(slot.url);
  slot.url = URL.createObjectURL(blob);
  input.src = slot.url;
  Object.assign(slot, { blob, label, code: null });
  for (const sec of [$("#swap"), $("#interp")]) if (sec.dataset.state === "ready") sec.dataset.state = "stale";
  stopPlaying();
  refreshButtons();
  try {
    const form = new FormData();
    form.append("images", blob, label.endsWith(".png") ? label : "image");
    const enc = await api("/encode", { method: "POST", body: form });
    if (slot.blob !== blob) return;   // a newer image replaced this one meanwhile
    const item = enc.items[0];
    slot.code = item.code;
    slot.predicted = item.predicted_label ?? null;
    const badge = $(".predicted", el);
    badge.hidden = slot.predicted === null;
    badge.textContent = slot.predicted === null ? "" : `looks like: ${slot.predicted}`;
    await decodeSlot(key);
  } catch (err) {
    if (slot.blob !== blob) return;
    Object.assign(slot, { blob: null, code: null });
    input.removeAttribute("src");
    fillPanels(el, null);
    $(".predicted", el).hidden = true;
    el.dataset.state = "error";
    showError(err, `use “${label}” as image ${key}`);
  }
  refreshButtons();
}

async function decodeSlot(key) {
  const slot = state.slots[key];
  if (!slot.code) return;
  const el = slot.el;
  el.dataset.state = "loading";
  const latent = { code: slot.code };
  const klass = chosenClass();
  if (klass !== null) latent["class"] = Number(klass);
  const res = await api(`/decode?outputs=${outputsParam()}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ latents: [latent] }),
  });
  fillPanels(el, res.items[0].outputs);
  el.dataset.state = "ready";
}

function buildSlot(key) {
  const node = $("#slot-template").content.firstElementChild.cloneNode(true);
  node.id = "slot-" + key;
  node.dataset.slot = key;
  $("h2", node).textContent = "Image " + key;
  $("#slots").append(node);
  state.slots[key] = { el: node, blob: null, code: null, label: "" };

  $(".file", node).addEventListener("change", (ev) => {
    const file = ev.target.files && ev.target.files[0];
    if (file) setImage(key, file, file.name);
    ev.target.value = "";   // choosing the same file again fires change again
  });
  const draw = $(".draw", node);
  $(".draw-toggle", node).addEventListener("click", () => { draw.hidden = !draw.hidden; });
  setupCanvas($("canvas", node));
  $(".draw-clear", node).addEventListener("click", () => clearCanvas($("canvas", node)));
  $(".draw-use", node).addEventListener("click", () => {
    $("canvas", node).toBlob((blob) => blob && setImage(key, blob, "drawing.png"), "image/png");
  });
}

function clearCanvas(canvas) {
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function setupCanvas(canvas) {
  clearCanvas(canvas);
  const ctx = canvas.getContext("2d");
  let last = null;
  const at = (ev) => {
    const r = canvas.getBoundingClientRect();
    return [(ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height];
  };
  canvas.addEventListener("pointerdown", (ev) => { canvas.setPointerCapture(ev.pointerId); last = at(ev); });
  canvas.addEventListener("pointermove", (ev) => {
    if (!last) return;
    const p = at(ev);
    // MNIST strokes are about a tenth of the image wide, soft-edged
    ctx.strokeStyle = "#fff"; ctx.lineWidth = canvas.width / 11; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.shadowColor = "#fff"; ctx.shadowBlur = canvas.width / 40;
    ctx.beginPath(); ctx.moveTo(...last); ctx.lineTo(...p); ctx.stroke();
    last = p;
  });
  for (const type of ["pointerup", "pointercancel"]) canvas.addEventListener(type, () => { last = null; });
}

async function loadSamples() {
  let list;
  try {
    const r = await fetch("/static/samples/samples.json");
    list = (await r.json()).items;
  } catch (e) {
    return;   // no samples shipped: upload and drawing still work
  }
  for (const [key, slot] of Object.entries(state.slots)) {
    const box = $(".samples", slot.el);
    for (const s of list) {
      const b = document.createElement("button");
      b.type = "button";
      b.title = `MNIST test digit ${s.index} (a ${s.label})`;
      b.dataset.sample = s.file;
      const img = document.createElement("img");
      img.src = "/static/samples/" + s.file;
      img.alt = s.label;
      b.append(img);
      b.addEventListener("click", async () => {
        try {
          const r = await fetch("/static/samples/" + s.file);
          if (!r.ok) throw new ApiError(r.status, "not_found", `sample ${s.file} is missing`, null);
          setImage(key, await r.blob(), s.file);
        } catch (err) { showError(err, "load the sample"); }
      });
      box.append(b);
    }
  }
}

// -- swap and interpolation --------------------------------------------------------------------------------------
function bothReady() { return Boolean(state.slots.A.code && state.slots.B.code); }

function refreshButtons() {
  const ok = bothReady();
  $("#swap-run").disabled = !ok;
  $("#interp-run").disabled = !ok;
}

async function runSwap() {
  const sec = $("#swap");
  sec.dataset.state = "loading";
  clearError();
  const klass = chosenClass();
  const call = (shape, appearance) => {
    const form = new FormData();
    form.append("shape", shape.blob, "shape.png");
    form.append("appearance", appearance.blob, "appearance.png");
    const q = `outputs=${outputsParam()}` + (klass !== null ? `&class=${klass}` : "");
    return api(`/swap?${q}`, { method: "POST", body: form });
  };
  try {
    const { A, B } = state.slots;
    const [ab, ba] = await Promise.all([call(A, B), call(B, A)]);
    fillPanels($('.swap-result[data-pair="ab"]', sec), ab.items[0].outputs);
    fillPanels($('.swap-result[data-pair="ba"]', sec), ba.items[0].outputs);
    sec.dataset.state = "ready";
  } catch (err) {
    sec.dataset.state = "error";
    showError(err, "swap shape and appearance");
  }
}

function factor() { return $('input[name="factor"]:checked').value; }

async function runInterp() {
  const sec = $("#interp");
  stopPlaying();
  sec.dataset.state = "loading";
  clearError();
  const steps = Math.round(Number($("#interp-steps").value) || 9);
  const q = new URLSearchParams({
    start: state.slots.A.code, end: state.slots.B.code, steps: String(steps), factor: factor(),
    outputs: outputsParam(), format: "json",
  });
  const klass = chosenClass();
  if (klass !== null) { q.set("start_class", klass); q.set("end_class", klass); }
  try {
    const res = await api(`/interpolate?${q}`);
    state.frames = res.items;
    const slider = $("#interp-slider");
    slider.max = String(state.frames.length - 1);
    slider.disabled = false;
    $("#interp-play").disabled = false;
    const strip = $("#interp-strip");
    strip.replaceChildren(...state.frames.map((f, i) => {
      const img = document.createElement("img");
      img.src = pngSrc(f.outputs.reconstruction);
      img.alt = `frame ${i}`;
      img.addEventListener("click", () => showFrame(i));
      return img;
    }));
    sec.dataset.factor = factor();
    sec.dataset.state = "ready";
    showFrame(Math.min(Number(slider.value), state.frames.length - 1));
  } catch (err) {
    sec.dataset.state = "error";
    showError(err, "interpolate");
  }
}

function showFrame(i) {
  const f = state.frames[i];
  if (!f) return;
  const sec = $("#interp");
  $("#interp-slider").value = String(i);
  $("#interp-t").textContent = `t = ${f.t.toFixed(2)}`;
  fillPanels($(".interp-view", sec), f.outputs);
  sec.dataset.frame = String(i);
  $$("#interp-strip img").forEach((img, k) => img.classList.toggle("current", k === i));
}

function stopPlaying() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
  $("#interp-play").textContent = "▶ Play";
}

function togglePlay() {
  if (state.timer) { stopPlaying(); return; }
  let i = Number($("#interp-slider").value), dir = 1;
  $("#interp-play").textContent = "❚❚ Pause";
  state.timer = setInterval(() => {
    const n = state.frames.length;
    if (n < 2) return;
    if (i + dir >= n || i + dir < 0) dir = -dir;   // ping-pong A -> B -> A
    i += dir;
    showFrame(i);
  }, 160);
}

// -- wiring ------------------------------------------------------------------------------------------------------
async function main() {
  buildSlot("A");
  buildSlot("B");
  $("#error-close").addEventListener("click", clearError);
  $("#swap-run").addEventListener("click", runSwap);
  $("#interp-run").addEventListener("click", runInterp);
  $("#interp-play").addEventListener("click", togglePlay);
  $("#interp-slider").addEventListener("input", (ev) => { stopPlaying(); showFrame(Number(ev.target.value)); });
  for (const r of $$('input[name="factor"]')) {
    r.addEventListener("change", () => { if (state.frames.length && bothReady()) runInterp(); });
  }
  $("#class-select").addEventListener("change", async () => {
    clearError();
    try {
      await Promise.all(["A", "B"].map((k) => decodeSlot(k)));
    } catch (err) { showError(err, "decode with that class"); }
    if ($("#swap").dataset.state === "ready") runSwap();
    if ($("#interp").dataset.state === "ready") runInterp();
  });
  $("#auth").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("#token").value.trim();
    sessionStorage.setItem("dae-token", state.token);
    $("#auth").hidden = true;
    clearError();
    if (!state.model) loadModel();
  });
  await loadModel();
  await loadSamples();
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", main);
