// The API key (localStorage, sent only as a header, never in a URL), JSON calls, job ids, and a
// Server-Sent Events reader over fetch(): EventSource cannot send an Authorization header.

const KEY_ITEM = "pixelserve.apiKey";

export function getKey() {
  return localStorage.getItem(KEY_ITEM) || "";
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY_ITEM, key);
  else localStorage.removeItem(KEY_ITEM);
}

export function authHeaders() {
  const key = getKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The message of any dialect's error body: OctoAI {detail}, the jobs API {error: {message}}.
export function errorMessage(status, body) {
  if (body && typeof body === "object") {
    const d = body.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
    if (body.error && body.error.message) return body.error.message;
  }
  return `HTTP ${status}`;
}

export async function api(path, options = {}) {
  const headers = { ...authHeaders(), ...(options.headers || {}) };
  let body = options.body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  const res = await fetch(path, { method: options.method || "GET", headers, body, signal: options.signal,
    cache: "no-store" });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) throw new ApiError(res.status, errorMessage(res.status, data));
  return data;
}

// A job id chosen here (X-Job-Id), so the page can watch the job while the request runs.
export function newJobId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "ui-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Reads one SSE response; calls onEvent({type, id, data}) per event. Returns the HTTP status.
export async function readEvents(url, headers, onEvent, signal) {
  const res = await fetch(url, { headers: { ...headers, Accept: "text/event-stream" }, signal, cache: "no-store" });
  if (!res.ok || res.status === 204) return res.status;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let ev = { type: "message", id: null, data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return res.status;
    buf += value;
    for (;;) {
      const i = buf.search(/[\r\n]/);
      if (i < 0 || (buf[i] === "\r" && i === buf.length - 1)) break; // a CR may be half of a CRLF
      const line = buf.slice(0, i);
      buf = buf.slice(buf[i] === "\r" && buf[i + 1] === "\n" ? i + 2 : i + 1);
      if (line === "") {
        if (ev.data.length) {
          let data = null;
          try { data = JSON.parse(ev.data.join("\n")); } catch { data = null; }
          onEvent({ type: ev.type, id: ev.id, data: data || {} });
        }
        ev = { type: "message", id: null, data: [] };
        continue;
      }
      if (line.startsWith(":")) continue; // a keep-alive comment
      const c = line.indexOf(":");
      const field = c < 0 ? line : line.slice(0, c);
      let v = c < 0 ? "" : line.slice(c + 1);
      if (v.startsWith(" ")) v = v.slice(1);
      if (field === "event") ev.type = v;
      else if (field === "data") ev.data.push(v);
      else if (field === "id") ev.id = v;
    }
  }
}

export const FINAL_EVENTS = new Set(["finished", "failed", "cancelled"]);

// Follows a job's events until its final one (or signal aborts): waits while the job does not
// exist yet (404: its request is still on the way) and reconnects with Last-Event-ID after a drop.
export async function watchJob(jobId, onEvent, signal) {
  let last = null;
  let ended = false;
  const url = `/v1/jobs/${encodeURIComponent(jobId)}/events?preview=true`;
  while (!ended && !signal.aborted) {
    const headers = { ...authHeaders(), ...(last ? { "Last-Event-ID": last } : {}) };
    let status;
    try {
      status = await readEvents(url, headers, (e) => {
        if (e.id) last = e.id;
        if (FINAL_EVENTS.has(e.type)) ended = true;
        onEvent(e);
      }, signal);
    } catch {
      if (signal.aborted) return;
      status = 0;
    }
    if (status === 204) return;
    if (status === 401 || status === 403) return;
    if (!ended) await sleep(status === 404 ? 150 : 500);
  }
}
