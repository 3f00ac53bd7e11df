// The playground: an OctoAI request built from the form (the dialect with every knob), watched
// through the jobs API's events while it runs. Every user-provided text goes in with textContent.
import { ApiError, api, getKey, newJobId, setKey, watchJob } from "./api.js";
import { GENERATORS } from "./codegen.js";
import { History } from "./history.js";
import { MaskPainter } from "./mask.js";

const $ = (id) => document.getElementById(id);
// OctoAI's documented resolutions per engine family (the server also accepts its configured extra sizes).
const FAMILY_SIZES = {
  sdxl: [[1024, 1024], [896, 1152], [832, 1216], [768, 1344], [640, 1536], [1536, 640], [1344, 768], [1216, 832], [1152, 896]],
  sd: [[512, 512], [640, 512], [768, 512], [512, 704], [512, 768], [576, 768], [640, 768], [576, 1024], [1024, 576]],
};
const LORA_ENGINES = { sd: "image/stable-diffusion-v1-5", sdxl: "image/stable-diffusion-xl-v1-0" };
const MAX_SEED = 4294967295;
const FALLBACK_SAMPLERS = ["DDIM", "K_EULER", "K_EULER_ANCESTRAL", "DPM_PLUS_PLUS_2M_KARRAS", "UNI_PC"];

const state = { config: null, run: null, init: null, loras: [] };
const painter = new MaskPainter($("mask-canvas"));
const history = new History($("history"), $("history-more"));

function say(text, kind = "") {
  $("status").textContent = text;
  $("status").className = kind;
}

// -- key ------------------------------------------------------------------------------------
async function useKey() {
  $("key-state").textContent = "";
  if (!getKey()) {
    $("key-state").textContent = "no key";
    return;
  }
  try {
    state.config = await api("/v1/ui/config");
  } catch (e) {
    $("key-state").textContent = e instanceof ApiError && e.status === 401 ? "key refused" : `error: ${e.message}`;
    return;
  }
  $("key-state").textContent = "key saved in this browser";
  fillModels();
  loadLoras();
  history.load();
  say("Ready.");
}

// -- form ------------------------------------------------------------------------------------
function option(value, label) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = label;
  return o;
}

function fillModels() {
  const models = state.config.models.filter((m) => m.family in FAMILY_SIZES);
  $("model").replaceChildren(...models.map((m) => {
    const o = option(m.id, `${m.id} (${m.family}${m.demo ? ", demo: draws noise" : ""}${m.loaded ? "" : ", loading"})`);
    o.dataset.family = m.family;
    return o;
  }));
  fillSizes();
}

function family() {
  const o = $("model").selectedOptions[0];
  return o ? o.dataset.family : "sd";
}

function fillSizes() {
  const extra = (state.config ? state.config.extra_sizes : []).map(([w, h]) => [w, h]);
  const sizes = [...extra, ...FAMILY_SIZES[family()]];
  $("size").replaceChildren(...sizes.map(([w, h]) => option(`${w}x${h}`, `${w} × ${h}`)), option("custom", "custom"));
  sizeChanged();
}

function sizeChanged() {
  $("custom-size").hidden = $("size").value !== "custom";
  renderCode();
}

function size() {
  if ($("size").value === "custom") return [Number($("width").value), Number($("height").value)];
  return $("size").value.split("x").map(Number);
}

async function loadSamplers() {
  let names = FALLBACK_SAMPLERS;
  let fallback = "DDIM";
  try {
    const schema = await (await fetch("/openapi.json")).json();
    const sampler = schema.components.schemas.ImageGenerationRequest.properties.sampler;
    if (Array.isArray(sampler.enum)) names = sampler.enum;
    fallback = sampler.default || fallback;
  } catch { /* the short list */ }
  $("sampler").replaceChildren(...names.map((n) => option(n, n)));
  $("sampler").value = fallback;
}

async function loadLoras() {
  state.loras = [];
  try {
    const page = await api("/v1/assets?asset_type=lora&limit=100");
    state.loras = page.data.filter((a) => a.status === "ready");
  } catch { /* shown as none */ }
  fillLoras();
}

function fillLoras() {
  const own = state.loras.filter((a) => a.data && a.data.engine === LORA_ENGINES[family()]);
  if (!own.length) {
    const none = document.createElement("span");
    none.className = "muted";
    none.textContent = "none for this model family";
    $("loras").replaceChildren(none);
    return;
  }
  $("loras").replaceChildren(...own.map((a, i) => {
    const row = document.createElement("div");
    row.className = "row lora";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = `lora-${i}`;
    box.dataset.name = a.name;
    const label = document.createElement("label");
    label.htmlFor = box.id;
    label.textContent = a.name;
    const weight = document.createElement("input");
    Object.assign(weight, { type: "number", min: "-2", max: "2", step: "0.05", value: "1" });
    weight.setAttribute("aria-label", `${a.name} weight`);
    row.append(box, label, weight);
    return row;
  }));
}

function rollSeed() {
  $("seed").value = String(crypto.getRandomValues(new Uint32Array(1))[0] % (MAX_SEED + 1));
}

// The OctoAI body the form describes (seed as it stands).
function body() {
  const [width, height] = size();
  const b = { prompt: $("prompt").value };
  if ($("negative-prompt").value.trim()) b.negative_prompt = $("negative-prompt").value;
  Object.assign(b, { width, height, steps: Number($("steps").value), cfg_scale: Number($("cfg-scale").value),
    sampler: $("sampler").value, num_images: Number($("num-images").value) });
  if ($("seed").value !== "") b.seed = Number($("seed").value);
  const loras = {};
  for (const box of $("loras").querySelectorAll("input[type=checkbox]:checked")) {
    loras[box.dataset.name] = Number(box.parentElement.querySelector("input[type=number]").value);
  }
  if (Object.keys(loras).length) b.loras = loras;
  if (state.init) {
    b.init_image = state.init.b64;
    b.strength = Number($("strength").value);
    if ($("inpaint").checked && painter.painted) b.mask_image = painter.maskBase64();
  }
  b.image_encoding = "png";
  return b;
}

// -- a run -------------------------------------------------------------------------------------
function onEvent(run, e) {
  if (run !== state.run) return;
  const p = $("progress");
  const d = e.data;
  if (e.type === "queued") {
    p.removeAttribute("value");
    say(d.queue_position ? `queued: ${d.queue_position} job(s) ahead` : "queued");
  } else if (e.type === "started") {
    say("running");
  } else if (e.type === "progress" || e.type === "preview") {
    if (d.steps) {
      p.max = d.steps;
      p.value = d.step;
      say(`running: step ${d.step} of ${d.steps}`);
    }
    if (e.type === "preview" && d.image) {
      $("preview").src = `data:image/jpeg;base64,${d.image}`;
      $("preview").hidden = false;
    }
  } else if (e.type === "finished") {
    p.value = p.max;
  } else if (e.type === "cancelled") {
    say("cancelled", "warn");
  } else if (e.type === "failed") {
    say(`failed: ${d.error || "unknown error"}`, "error");
  }
}

async function generate(ev) {
  ev.preventDefault();
  if (state.run) return;
  if (!$("seed-lock").checked || $("seed").value === "") rollSeed();
  const b = body();
  const engine = family();
  renderCode();
  const run = { jobId: newJobId(), watch: new AbortController(), cancelled: false, params: { engine, ...b } };
  state.run = run;
  $("generate").disabled = true;
  $("cancel").disabled = false;
  $("preview").hidden = true;
  $("progress").max = 1;
  $("progress").value = 0;
  say("sending");
  const watching = watchJob(run.jobId, (e) => onEvent(run, e), run.watch.signal);
  try {
    const out = await api(`/generate/${engine}`, { method: "POST", json: b, headers: { "X-Job-Id": run.jobId } });
    showResults(out.images, run.params);
    $("progress").value = $("progress").max;
    say(`done: ${out.images.length} image(s) in ${(out.prediction_time_ms / 1000).toFixed(1)} s`, "ok");
    setTimeout(() => run.watch.abort(), 3000); // the stream's final event is due; stop waiting for it
  } catch (e) {
    run.watch.abort();
    if (run.cancelled) say("cancelled", "warn");
    else say(`error: ${e.message}`, "error");
  } finally {
    state.run = null;
    $("generate").disabled = false;
    $("cancel").disabled = true;
    watching.catch(() => {});
    history.load();
  }
}

async function cancel() {
  const run = state.run;
  if (!run) return;
  run.cancelled = true;
  $("cancel").disabled = true;
  say("cancelling");
  try {
    const job = await api(`/v1/jobs/${encodeURIComponent(run.jobId)}`, { method: "DELETE" });
    if (job.status === "cancelled") say("cancelled", "warn");
  } catch (e) {
    say(`cancel: ${e.message}`, "error");
  }
}

// -- results -------------------------------------------------------------------------------------
function button(label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

function showResults(images, params) {
  const shown = images.filter((im) => im.image_b64);
  $("results").replaceChildren(...shown.map((im) => {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = `data:image/png;base64,${im.image_b64}`;
    img.alt = `result, seed ${im.seed}`;
    img.tabIndex = 0;
    const own = { ...params, seed: im.seed };
    const details = () => {
      const { init_image: _i, mask_image: _m, ...rest } = own;
      $("details-text").textContent = JSON.stringify(rest, null, 2);
      $("details").hidden = false;
    };
    img.addEventListener("click", details);
    img.addEventListener("keydown", (e) => { if (e.key === "Enter") details(); });
    const cap = document.createElement("figcaption");
    cap.textContent = `seed ${im.seed}`;
    const download = document.createElement("a");
    download.href = img.src;
    download.download = `pixelserve-${im.seed}.png`;
    download.textContent = "Download";
    const actions = document.createElement("div");
    actions.className = "row";
    actions.append(download, button("Vary", () => vary(own)), button("Use as init image", () => useAsInit(im.image_b64, false)),
      button("Inpaint", () => useAsInit(im.image_b64, true)));
    fig.append(img, cap, actions);
    return fig;
  }));
  if (shown.length < images.length) {
    const p = document.createElement("p");
    p.textContent = `${images.length - shown.length} image(s) removed by the safety check`;
    $("results").append(p);
  }
}

function vary(params) {
  $("prompt").value = params.prompt;
  $("negative-prompt").value = params.negative_prompt || "";
  $("steps").value = String(params.steps);
  $("cfg-scale").value = String(params.cfg_scale);
  $("sampler").value = params.sampler;
  $("seed-lock").checked = false; // a new seed
  $("gen-form").requestSubmit();
}

function loadInit(b64, mime = "image/png") {
  return new Promise((resolve, reject) => {
    const img = $("init-preview");
    img.onload = () => {
      state.init = { b64, width: img.naturalWidth, height: img.naturalHeight };
      painter.reset(img.naturalWidth, img.naturalHeight);
      $("init-area").hidden = false;
      renderCode();
      resolve();
    };
    img.onerror = () => reject(new Error("not an image"));
    img.src = `data:${mime};base64,${b64}`;
  });
}

async function useAsInit(b64, inpaint) {
  await loadInit(b64);
  $("inpaint").checked = inpaint;
  $("strength").value = inpaint ? "1" : "0.6";
  $("strength-value").textContent = $("strength").value;
  $("init-set").scrollIntoView();
}

function readFile() {
  const file = $("init-file").files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    const [head, b64] = String(reader.result).split(",");
    loadInit(b64, head.slice(5).split(";")[0]).catch((e) => say(`init image: ${e.message}`, "error"));
  };
  reader.readAsDataURL(file);
}

function clearInit() {
  state.init = null;
  $("init-area").hidden = true;
  $("init-file").value = "";
  painter.clear();
  renderCode();
}

// -- copy as code ----------------------------------------------------------------------------------
function renderCode() {
  const gen = GENERATORS.find((g) => g.id === $("code-lang").value) || GENERATORS[0];
  $("code").textContent = gen.make({ base: location.origin, engine: family(), family: family(), model: $("model").value,
    body: body() });
}

function start() {
  $("code-lang").replaceChildren(...GENERATORS.map((g) => option(g.id, g.label)));
  $("api-key").value = getKey();
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setKey($("api-key").value.trim());
    useKey();
  });
  $("forget-key").addEventListener("click", () => { setKey(""); $("api-key").value = ""; $("key-state").textContent = "forgotten"; });
  $("gen-form").addEventListener("submit", generate);
  $("gen-form").addEventListener("input", renderCode);
  $("cancel").addEventListener("click", cancel);
  $("model").addEventListener("change", () => { fillSizes(); fillLoras(); });
  $("size").addEventListener("change", sizeChanged);
  $("dice").addEventListener("click", () => { rollSeed(); renderCode(); });
  $("code-lang").addEventListener("change", renderCode);
  $("copy-code").addEventListener("click", () => navigator.clipboard.writeText($("code").textContent)
    .then(() => say("code copied"), () => say("select the code and copy it", "warn")));
  $("strength").addEventListener("input", () => { $("strength-value").textContent = $("strength").value; });
  $("init-file").addEventListener("change", readFile);
  $("clear-init").addEventListener("click", clearInit);
  $("clear-mask").addEventListener("click", () => painter.clear());
  // The files the copied code reads, made when asked for (the click's default action follows).
  $("download-init").addEventListener("click", (e) => { e.currentTarget.href = `data:image/png;base64,${state.init.b64}`; });
  $("download-mask").addEventListener("click", (e) => { e.currentTarget.href = `data:image/png;base64,${painter.maskBase64()}`; });
  $("brush-size").addEventListener("input", () => { painter.size = Number($("brush-size").value); });
  for (const r of document.querySelectorAll("input[name=tool]")) r.addEventListener("change", () => { painter.tool = r.value; });
  $("history-refresh").addEventListener("click", () => history.load());
  loadSamplers().then(renderCode);
  useKey();
}

start();
