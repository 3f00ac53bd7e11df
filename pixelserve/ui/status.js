// The status page: the server's own numbers (GET /v1/ui/stats) every 10 s, the last hour drawn as
// plain SVG: jobs per minute as bars, p50 and p95 latency as lines.
import { api, getKey, setKey } from "./api.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const W = 900, H = 260, PAD = { l: 40, r: 50, t: 10, b: 30 };

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

const secs = (v) => (v === null || v === undefined ? "–" : v < 10 ? `${v.toFixed(2)} s` : `${v.toFixed(0)} s`);

// A round axis top at or above v.
function nice(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((x) => x >= v);
}

export function drawChart(svg, buckets) {
  const n = buckets.length;
  const pw = W - PAD.l - PAD.r, ph = H - PAD.t - PAD.b;
  const maxJobs = nice(Math.max(...buckets.map((b) => b.jobs)));
  const maxLat = nice(Math.max(0, ...buckets.map((b) => b.p95 || 0)));
  const x = (i) => PAD.l + (i * pw) / n;
  const yJ = (v) => PAD.t + ph - (v / maxJobs) * ph;
  const yL = (v) => PAD.t + ph - (v / maxLat) * ph;
  const parts = [el("rect", { x: PAD.l, y: PAD.t, width: pw, height: ph, fill: "#fafbfd", stroke: "#ccd" })];
  for (const f of [0, 0.5, 1]) {
    const y = PAD.t + ph - f * ph;
    parts.push(el("line", { x1: PAD.l, x2: PAD.l + pw, y1: y, y2: y, stroke: "#e3e6ee" }));
    parts.push(el("text", { x: PAD.l - 6, y: y + 4, "text-anchor": "end" }, String(+(f * maxJobs).toFixed(1))));
    parts.push(el("text", { x: PAD.l + pw + 6, y: y + 4 }, `${+(f * maxLat).toFixed(2)} s`));
  }
  buckets.forEach((b, i) => {
    if (b.jobs) {
      const rect = el("rect", { x: x(i) + 1, y: yJ(b.jobs), width: Math.max(1, pw / n - 2), height: yJ(0) - yJ(b.jobs), fill: "#4a7bd0" });
      rect.append(el("title", {}, `${new Date(b.start).toLocaleTimeString()}: ${b.jobs} job(s), p50 ${secs(b.p50)}, p95 ${secs(b.p95)}`));
      parts.push(rect);
    }
  });
  for (const [key, colour] of [["p50", "#0a8a55"], ["p95", "#d0602a"]]) {
    const pts = buckets.map((b, i) => (b[key] === null ? null : `${x(i) + pw / n / 2},${yL(b[key])}`)).filter(Boolean);
    if (pts.length > 1) parts.push(el("polyline", { points: pts.join(" "), fill: "none", stroke: colour, "stroke-width": 2 }));
    for (const p of pts) { // a dot per minute: a lone minute shows too
      const [cx, cy] = p.split(",");
      parts.push(el("circle", { cx, cy, r: 3, fill: colour }));
    }
  }
  for (const i of [0, n / 2, n]) {
    const label = i === n ? "now" : `−${Math.round(n - i)} min`;
    parts.push(el("text", { x: x(i), y: H - 10, "text-anchor": i === 0 ? "start" : i === n ? "end" : "middle" }, label));
  }
  svg.replaceChildren(...parts);
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

async function refresh() {
  let s;
  try {
    s = await api("/v1/ui/stats");
  } catch (e) {
    $("status").textContent = e.status === 401 ? "Enter an API key to see the status." : `error: ${e.message}`;
    return;
  }
  const e = s.engine;
  $("engine-state").textContent = e.draining ? "draining" : e.ready ? "ready" : e.error ? "error" : "loading";
  $("queue").textContent = `${e.queue_depth} / ${e.queue_capacity}`;
  $("running").textContent = String(e.running);
  $("devices").textContent = e.devices.join(", ") || "none";
  const h = s.last_hour;
  $("jobs-hour").textContent = String(h.jobs);
  $("p50").textContent = secs(h.p50);
  $("p95").textContent = secs(h.p95);
  $("outcomes").textContent = `Last hour: ${h.outcomes.succeeded} succeeded, ${h.outcomes.failed} failed, ` +
    `${h.outcomes.cancelled} cancelled.` + (e.error ? ` Loading error: ${e.error}` : "");
  $("models").replaceChildren(...s.models.map((m) => {
    const tr = document.createElement("tr");
    tr.append(cell(m.id + (m.demo ? " (demo)" : "")), cell(m.family), cell(m.loaded ? "yes" : "no"));
    return tr;
  }));
  drawChart($("chart"), h.buckets);
  $("status").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

$("api-key").value = getKey();
$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  setKey($("api-key").value.trim());
  refresh();
});
refresh();
setInterval(refresh, 10000);
