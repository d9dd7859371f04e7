// Processes panel: what `tandem up` supervises (GET /api/processes), polled every 2 s.
// One entry per role: status and pid, then uptime (or when it restarts), restarts and the
// last exit. A child in backoff or one that has restarted is highlighted. Two lines per
// process so that it fits the operate page's side column; used by operate and training.

import { ApiError, api } from "./net.js";
import { fmtDuration, h } from "./ui.js";

const POLL_MS = 2000;
const SIGNALS = {
  1: "SIGHUP",
  2: "SIGINT",
  6: "SIGABRT",
  9: "SIGKILL",
  11: "SIGSEGV",
  15: "SIGTERM",
};

/** "exit code 3", or "exit code -9 (SIGKILL)" for a process killed by a signal. */
export function exitText(code) {
  const signal = code < 0 ? SIGNALS[-code] : null;
  return signal ? `exit code ${code} (${signal})` : `exit code ${code}`;
}

/** The page's state of the supervisor: loading | supervised | stale | unsupervised | error. */
function stateOf(data, error) {
  if (error) return "error";
  if (!data) return "loading";
  if (!data.supervised) return "unsupervised";
  return data.supervisor_alive === false ? "stale" : "supervised";
}

export class ProcessesPanel {
  /** Render into `section` (an empty `.panel`); polls until the page closes. */
  constructor(section) {
    this.section = section;
    this.badge = h("span", { class: "badge", "data-role": "summary" });
    this.note = h("p", { class: "small", "data-role": "note" }, "Loading…");
    this.list = h("ul", { class: "procs" });
    section.replaceChildren(
      h("h2", { class: "row" }, "Processes", this.badge),
      this.note,
      this.list,
    );
    this.state = "loading";
    this.data = null;
    this.error = null;
    this.clockOffsetMs = 0; // server clock minus this browser's clock
    this.polls = 0;
    this.show();
    this.poll();
  }

  /** The server's current time in seconds (ages are measured on the server's clock). */
  now() {
    return (Date.now() + this.clockOffsetMs) / 1000;
  }

  async poll() {
    if (document.visibilityState === "visible") {
      try {
        const data = await api("/api/processes");
        this.clockOffsetMs = data.server_time * 1000 - Date.now();
        this.data = data;
        this.error = null;
      } catch (err) {
        this.error = err instanceof ApiError ? err.detail : `server unreachable (${err.message})`;
        if (err instanceof ApiError && err.status === 401) {
          this.show();
          return; // not logged in: the page says so; polling again cannot help
        }
      }
      this.polls += 1;
      this.show();
    }
    setTimeout(() => this.poll(), POLL_MS);
  }

  show() {
    this.state = stateOf(this.data, this.error);
    const children = this.state === "error" || !this.data ? [] : this.data.children;
    const alert = children.some((c) => c.status === "backoff" || c.restarts > 0);
    this.section.dataset.state = this.state;
    this.section.dataset.alert = String(alert || this.state === "error");
    this.list.hidden = children.length === 0;
    this.list.replaceChildren(...children.map((c) => this.item(c)));
    this.note.textContent = this.noteText();
    this.note.hidden = this.note.textContent === "";
    this.note.classList.toggle("muted", this.state === "loading" || this.state === "unsupervised");
    this.showBadge(children);
  }

  noteText() {
    if (this.state === "error") return `Process status unavailable: ${this.error}`;
    if (this.state === "loading") return "Loading…";
    if (this.state === "unsupervised") {
      return "Not started by tandem up: this server runs on its own, nothing is supervised.";
    }
    if (this.state === "stale") {
      const age = fmtDuration(this.now() - this.data.t_wall);
      return `tandem up is no longer running; these are the states it last wrote, ${age} ago.`;
    }
    return "";
  }

  showBadge(children) {
    const backoff = children.filter((c) => c.status === "backoff").length;
    const restarts = children.reduce((sum, c) => sum + c.restarts, 0);
    let [text, kind] = ["", ""];
    if (this.state === "error") [text, kind] = ["unknown", "bad"];
    else if (this.state === "unsupervised") text = "not supervised";
    else if (this.state === "stale") text = "stopped";
    else if (backoff) [text, kind] = [`${backoff} in backoff`, "bad"];
    else if (restarts) [text, kind] = [`${restarts} restart${restarts > 1 ? "s" : ""}`, "warn"];
    else if (children.length && children.every((c) => c.status === "running")) {
      [text, kind] = ["all running", "ok"];
    }
    this.badge.textContent = text;
    this.badge.className = `badge ${kind}`;
    this.badge.hidden = text === "";
  }

  /** One child: role, status and pid; then uptime or restart time, restarts, last exit. */
  item(c) {
    const classes = [
      "proc",
      c.status === "backoff" ? "backoff" : "",
      c.restarts ? "restarted" : "",
    ];
    return h(
      "li",
      { class: classes.join(" ").trim(), dataset: { role: c.role, status: c.status } },
      h(
        "div",
        { class: "row" },
        h("span", { class: "mono role" }, c.role),
        h("span", { class: "badge", dataset: { status: c.status, field: "status" } }, c.status),
        h("span", { class: "spacer" }),
        h("span", { class: "small muted mono", "data-field": "pid" }, c.pid ? `pid ${c.pid}` : ""),
      ),
      h("div", { class: "small facts" }, ...this.facts(c)),
    );
  }

  facts(c) {
    const now = this.now();
    const facts = [];
    const fact = (field, text) => facts.push(h("span", { "data-field": field }, text));
    if (c.status === "running" && c.started_wall)
      fact("up", `up ${fmtDuration(now - c.started_wall)}`);
    if (c.status === "backoff" && c.next_start_wall) {
      fact("next", `restart in ${fmtDuration(c.next_start_wall - now)}`);
    }
    fact("restarts", c.restarts === 1 ? "1 restart" : `${c.restarts} restarts`);
    if (c.last_exit_code !== null && c.last_exit_code !== undefined) {
      const ago = c.last_exit_wall ? `, ${fmtDuration(now - c.last_exit_wall)} ago` : "";
      fact("exit", `last ${exitText(c.last_exit_code)}${ago}`);
    }
    return facts;
  }

  /** A plain snapshot for the browser tests and the console. */
  summary() {
    return {
      state: this.state,
      polls: this.polls,
      error: this.error,
      children: this.data?.children ?? [],
    };
  }
}
