// The caller's recent jobs (GET /v1/jobs), newest first, a page at a time, with thumbnails.
import { api } from "./api.js";

const PAGE = 12;

export class History {
  constructor(list, more) {
    this.list = list;
    this.more = more;
    this.lastId = null;
    more.addEventListener("click", () => this.load(false));
  }

  async load(fresh = true) {
    if (fresh) {
      this.list.replaceChildren();
      this.lastId = null;
    }
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (this.lastId) q.set("before", this.lastId);
    let page;
    try {
      page = await api(`/v1/jobs?${q}`);
    } catch (e) {
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = `history: ${e.message}`;
      this.list.replaceChildren(p);
      this.more.hidden = true;
      return;
    }
    for (const job of page.data) this.list.append(this.item(job));
    if (page.data.length) this.lastId = page.data[page.data.length - 1].id;
    this.more.hidden = !page.has_more;
    if (!this.list.childElementCount) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = "no jobs yet";
      this.list.append(p);
    }
  }

  item(job) {
    const row = document.createElement("div");
    row.className = "history-item";
    const text = document.createElement("span");
    const when = job.created_at ? new Date(job.created_at).toLocaleString() : "";
    text.textContent = `${when} · ${job.status} · ${job.id}`;
    row.append(text);
    for (const im of job.images) {
      const a = document.createElement("a");
      a.href = im.url;
      a.target = "_blank";
      a.rel = "noopener";
      const img = document.createElement("img");
      img.src = im.url;
      img.alt = `seed ${im.seed}`;
      img.loading = "lazy";
      a.append(img);
      row.append(a);
    }
    return row;
  }
}
