// Small DOM helpers shared by the pages.

/** document.getElementById that throws when the element is missing (a page bug). */
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page has no element #${id}`);
  return el;
}

/** Create an element with attributes and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child);
  }
  return el;
}

let toastTimer = null;

/** Show a short message at the bottom of the page; errors stay longer. */
export function toast(text, { error = false } = {}) {
  let el = document.getElementById("toast");
  if (!el) {
    el = h("div", { id: "toast", class: "toast", role: "status" });
    document.body.append(el);
  }
  el.textContent = text;
  el.classList.toggle("error", error);
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.hidden = true), error ? 6000 : 2500);
}

/** Show the control mode on a badge element (data-mode drives its colour). */
export function showMode(el, mode) {
  const value = mode ?? "offline";
  el.dataset.mode = value;
  el.textContent = value.replace("_", " ");
}

/** Format a number with fixed decimals, or an em dash when missing. */
export function fmt(x, digits = 2) {
  return x === null || x === undefined || !Number.isFinite(Number(x))
    ? "—"
    : Number(x).toFixed(digits);
}

/** Format milliseconds for the latency readout. */
export function fmtMs(ms) {
  return ms === null || ms === undefined || !Number.isFinite(ms) ? "—" : `${Math.round(ms)} ms`;
}

/** Format a duration in seconds: "12 s", "4 min 5 s", "2 h 5 min", "3 d 4 h" (or a dash). */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const t = Math.max(0, Math.round(seconds));
  if (t < 60) return `${t} s`;
  if (t < 3600) return `${Math.floor(t / 60)} min ${t % 60} s`;
  if (t < 86400) return `${Math.floor(t / 3600)} h ${Math.floor((t % 3600) / 60)} min`;
  return `${Math.floor(t / 86400)} d ${Math.floor((t % 86400) / 3600)} h`;
}

/** Mark the current page's link in the header navigation. */
export function markNav() {
  const here = location.pathname.endsWith("/") ? "/index.html" : location.pathname;
  for (const a of document.querySelectorAll("header.top nav a")) {
    const target = new URL(a.href).pathname;
    a.classList.toggle("here", target === here || (here === "/index.html" && target === "/"));
  }
}

/** A policy episode's result in words: alone, with help, or not (demos have none). */
export function resultText(result) {
  const words = {
    autonomous_success: "autonomous success",
    assisted_success: "success with help",
    failure: "failure",
  };
  return words[result] ?? "—";
}
