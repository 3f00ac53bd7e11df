// "Copy as code": the playground's request written for each dialect the server speaks. One row per
// generator in GENERATORS: {id, label, make(req)} where req = {base, engine, family, model, body}; body is
// the OctoAI JSON body the page sends, and model the selected model's id. To add a dialect, append a
// row. The key is read from the environment (PIXELSERVE_API_KEY), never written into the code.

const KEY_ENV = "PIXELSERVE_API_KEY";
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

// A Python literal for a JSON value.
export function py(value, indent = "") {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value); // a JSON string is a valid Python str
  if (Array.isArray(value)) return `[${value.map((v) => py(v, indent)).join(", ")}]`;
  const inner = indent + "    ";
  const items = Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${py(v, inner)},`);
  return items.length ? `{\n${items.join("\n")}\n${indent}}` : "{}";
}

function pyKwargs(obj, indent) {
  return Object.entries(obj).map(([k, v]) => `${indent}${k}=${py(v, indent)},`).join("\n");
}

// Long base64 images make unreadable snippets; the shell and Python versions read them from files.
function withoutImages(body) {
  const out = { ...body };
  const files = {};
  for (const field of ["init_image", "mask_image"]) {
    if (out[field]) {
      files[field] = field === "init_image" ? "init.png" : "mask.png";
      delete out[field];
    }
  }
  return { body: out, files };
}

// Writes out-0.png ... from the answer (or prints the error and fails).
const DECODE = "python3 -c 'import base64, json, sys; r = json.load(sys.stdin); \"images\" in r or sys.exit(json.dumps(r)); " +
  "[(open(f\"out-{i}.png\", \"wb\").write(base64.b64decode(im[\"image_b64\"])), print(f\"out-{i}.png seed\", im[\"seed\"])) " +
  "for i, im in enumerate(r[\"images\"])]'";

// The body goes through a variable and a here-string: no quoting to escape, no command-line length limit.
function bodyVar(body) {
  return `BODY=$(cat <<'JSON'\n${JSON.stringify(body)}\nJSON\n)`;
}

function curlOctoAI({ base, engine, body }) {
  const { body: rest, files } = withoutImages(body);
  const names = Object.values(files);
  const lines = [`# OctoAI API. export ${KEY_ENV}=<your key>` + (names.length ? `; needs jq, and ${names.join(" and ")} here` : "")];
  lines.push(bodyVar(rest));
  let input = '<<<"$BODY"';
  if (names.length) {
    // jq adds the image files (base64) to the body: they are too long for a command line.
    const args = Object.entries(files).map(([f, name]) => `--rawfile ${f} <(base64 -w0 ${name})`).join(" ");
    const set = Object.keys(files).map((f) => `.${f} = $${f}`).join(" | ");
    lines.push(`jq -c ${args} '${set}' <<<"$BODY" \\`);
    input = "";
    lines.push(`| curl -sS -X POST '${base}/generate/${engine}' \\`);
  } else {
    lines.push(`curl -sS -X POST '${base}/generate/${engine}' \\`);
  }
  lines.push(`  -H "Authorization: Bearer $${KEY_ENV}" -H 'Content-Type: application/json' \\`);
  lines.push(`  --data-binary @-${input ? ` ${input}` : ""} \\`);
  lines.push(`| ${DECODE}`);
  return lines.join("\n");
}

function pyImages(files, target) {
  return Object.entries(files).map(([f, name]) =>
    `${target}[${JSON.stringify(f)}] = base64.b64encode(open(${JSON.stringify(name)}, "rb").read()).decode()`);
}

function octoaiSdk({ base, engine, body }) {
  const { body: rest, files } = withoutImages(body);
  const head = ["import base64", "import os", "", "from octoai.client import OctoAI",
    "from octoai.environment import OctoAIEnvironment", "",
    `URL = ${py(base)}`,
    `client = OctoAI(api_key=os.environ[${py(KEY_ENV)}],`,
    "                environment=OctoAIEnvironment(default=URL, image_gen=URL, text_gen=URL))"];
  const args = { ...rest };
  const lines = [...head, `args = ${py(args)}`, ...pyImages(files, "args")];
  if (engine === "sdxl") {
    lines.push("out = client.image_gen.generate_sdxl(**args)", "images = out.images");
  } else {
    lines.push(`# SDK 1.11 has generate_sdxl but no generate_${engine.replace(/-/g, "_")}: the same request, by hand`,
      "w = client._client_wrapper",
      `r = w.httpx_client.request("generate/${engine}", base_url=w.get_environment().image_gen, method="POST", json=args)`,
      "if r.is_error:", "    raise SystemExit(f\"{r.status_code} {r.text}\")", "from types import SimpleNamespace",
      "images = [SimpleNamespace(**im) for im in r.json()[\"images\"]]");
  }
  lines.push("for i, im in enumerate(images):",
    "    open(f\"out-{i}.png\", \"wb\").write(base64.b64decode(im.image_b64))", "    print(f\"out-{i}.png seed {im.seed}\")");
  return lines.join("\n");
}

// Karlo's sides per version (v2.0: 384-640, v2.1: 768-1280): the version whose range is nearest.
const KARLO_SIDES = { "v2.0": [384, 640], "v2.1": [768, 1280] };

function karlo({ base, body }) {
  const side = Math.max(body.width || 512, body.height || 512);
  const version = side > 700 ? "v2.1" : "v2.0";
  const [lo, hi] = KARLO_SIDES[version];
  const w = clamp(Math.round((body.width || 512) / 8) * 8, lo, hi);
  const h = clamp(Math.round((body.height || 512) / 8) * 8, lo, hi);
  const req = { version, prompt: body.prompt };
  if (body.negative_prompt) req.negative_prompt = body.negative_prompt;
  Object.assign(req, { width: w, height: h, samples: clamp(body.num_images || 1, 1, 8), image_format: "png",
    return_type: "base64_string", num_inference_steps: clamp(body.steps || 50, 10, 100),
    guidance_scale: clamp(body.cfg_scale || 5, 1, 20) });
  if (typeof body.seed === "number") req.seed = [body.seed];
  return [`# Karlo API (Kakao): its own models and ranges (${version}: sides ${lo}-${hi}; steps 10-100).`,
    "import base64", "import os", "", "import requests", "",
    `r = requests.post(${py(base + "/v2/inference/karlo/t2i")},`,
    `                  headers={"Authorization": "KakaoAK " + os.environ[${py(KEY_ENV)}]},`,
    `                  json=${py(req, "                  ")}, timeout=600)`,
    "if not r.ok:", "    raise SystemExit(f\"{r.status_code} {r.text}\")",
    "for i, im in enumerate(r.json()[\"images\"]):",
    "    open(f\"out-{i}.png\", \"wb\").write(base64.b64decode(im[\"image\"]))",
    "    print(f\"out-{i}.png seed {im['seed']}\")"].join("\n");
}

function studioRatio(w, h) {
  if (!w || !h || w === h) return "1:1";
  const r = w / h;
  const options = [["3:4", 3 / 4], ["4:3", 4 / 3], ["9:16", 9 / 16], ["16:9", 16 / 9]];
  return options.reduce((best, o) => (Math.abs(o[1] - r) < Math.abs(best[1] - r) ? o : best))[0];
}

function studio({ base, body }) {
  const n = body.num_images || 1;
  const req = { prompt: body.prompt, ratio: studioRatio(body.width, body.height), styleId: 1,
    sample: n <= 1 ? 1 : n <= 2 ? 2 : 4 };
  return [`# Studio API: a prompt, a ratio and a style (the style and the server pick the model and its settings).`,
    "# styleId 1-4: the built-in styles photographic, anime, watercolor, 3d-model (GET /api/styles lists yours too).",
    `# export ${KEY_ENV}=<key>`,
    bodyVar(req),
    `curl -sS -X POST '${base}/api/images/create' \\`,
    `  -H "X-Api-Key: $${KEY_ENV}" -H 'Content-Type: application/json' \\`,
    `  --data-binary @- <<<"$BODY"`].join("\n");
}

function openaiSdk({ base, body }) {
  const args = { model: "gpt-image-1", prompt: body.prompt, n: body.num_images || 1,
    size: body.width && body.height ? `${body.width}x${body.height}` : "auto", output_format: "png" };
  return ["# OpenAI Images API through the official SDK.", "import base64", "import os", "", "from openai import OpenAI", "",
    `client = OpenAI(base_url=${py(base + "/v1")}, api_key=os.environ[${py(KEY_ENV)}])`,
    `out = client.images.generate(\n${pyKwargs(args, "    ")}\n)`,
    "for i, im in enumerate(out.data):", "    open(f\"out-{i}.png\", \"wb\").write(base64.b64decode(im.b64_json))",
    "    print(f\"out-{i}.png\")"].join("\n");
}

// OctoAI's sampler names (the page's list) -> A1111's sampler label and schedule (dialects/a1111/samplers.py).
const A1111_SAMPLERS = {
  PNDM: ["PLMS", "Automatic"], LMS: ["LMS", "Automatic"], KLMS: ["LMS", "Karras"], DDIM: ["DDIM", "Automatic"],
  HEUN: ["Heun", "Automatic"], K_HEUN: ["Heun", "Automatic"], K_EULER: ["Euler", "Automatic"],
  K_EULER_ANCESTRAL: ["Euler a", "Automatic"], DPM_SOLVER_MULTISTEP: ["DPM++ 2M", "Automatic"],
  DPM_PLUS_PLUS_2M_KARRAS: ["DPM++ 2M", "Karras"], DPM_PLUS_PLUS_2M_SDE: ["DPM++ 2M SDE", "Automatic"],
  DPM_PLUS_PLUS_2M_SDE_KARRAS: ["DPM++ 2M SDE", "Karras"], DPM_2: ["DPM2", "Automatic"],
  DPM_2_KARRAS: ["DPM2", "Karras"], DPM_2_ANCESTRAL: ["DPM2 a", "Automatic"],
  DPM_2_ANCESTRAL_KARRAS: ["DPM2 a", "Karras"], DPM_PLUS_PLUS_SDE_KARRAS: ["DPM++ SDE", "Karras"],
  UNI_PC: ["UniPC", "Automatic"], LCM: ["LCM", "Automatic"],
};

function webuiapi({ base, model, body }) {
  const { files } = withoutImages(body);
  const lines = ["# AUTOMATIC1111 API (/sdapi/v1) through the webuiapi client: HTTP Basic, the key as password (any username).",
    "import os", "", "import webuiapi"];
  if (files.init_image) lines.push("from PIL import Image");
  lines.push("", `api = webuiapi.WebUIApi(baseurl=${py(base + "/sdapi/v1")}, username="any", password=os.environ[${py(KEY_ENV)}])`);
  // LoRAs go in the prompt as A1111 writes them: <lora:NAME:WEIGHT>.
  const tags = Object.entries(body.loras || {}).map(([name, w]) => ` <lora:${name}:${w}>`).join("");
  const args = { prompt: body.prompt + tags };
  if (body.negative_prompt) args.negative_prompt = body.negative_prompt;
  Object.assign(args, { width: body.width, height: body.height, steps: body.steps, cfg_scale: body.cfg_scale,
    seed: typeof body.seed === "number" ? body.seed : -1, batch_size: body.num_images || 1 });
  const sampler = A1111_SAMPLERS[body.sampler];
  if (sampler) {
    [args.sampler_name, args.scheduler] = sampler;
  } else if (body.sampler) {
    lines.push(`# A1111 has no sampler like ${body.sampler}: the server's default (Euler a) draws it.`);
  }
  if (model) args.override_settings = { sd_model_checkpoint: model };
  if (files.init_image) {
    args.images = "INIT";
    args.denoising_strength = body.strength;
    if (files.mask_image) args.mask_image = "MASK";
  }
  let call = `out = api.${files.init_image ? "img2img" : "txt2img"}(\n${pyKwargs(args, "    ")}\n)`;
  call = call.replace('images="INIT"', `images=[Image.open(${py(files.init_image)})]`)
    .replace('mask_image="MASK"', `mask_image=Image.open(${py(files.mask_image)})`);
  lines.push(call, "for i, (im, seed) in enumerate(zip(out.images, out.info[\"all_seeds\"])):",
    "    im.save(f\"out-{i}.png\")", "    print(f\"out-{i}.png seed {seed}\")");
  return lines.join("\n");
}

export const GENERATORS = [
  { id: "curl", label: "curl (OctoAI API, what this page sends)", make: curlOctoAI },
  { id: "octoai-sdk", label: "Python: OctoAI SDK", make: octoaiSdk },
  { id: "karlo", label: "Python: Karlo API with requests", make: karlo },
  { id: "studio", label: "curl: Studio API", make: studio },
  { id: "openai", label: "Python: OpenAI SDK (Images API)", make: openaiSdk },
  { id: "webuiapi", label: "Python: webuiapi (AUTOMATIC1111 API)", make: webuiapi },
];
