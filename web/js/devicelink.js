// "Connect a device": the header button opens a dialog with a fresh one-time login link
// (POST /api/auth/device-link, operators only) as a QR code, for a headset or tablet.
// The QR library (uqr, npm) is loaded when the dialog first opens.

import { api } from "./net.js";
import { fmtDuration, h } from "./ui.js";

const QR_MODULE = "/node_modules/uqr/dist/index.mjs";

const state = { dialog: null, link: null, issued: 0 };

/** Show the header's #connect-device button to operators and open the dialog on click. */
export function wireDeviceLink(user) {
  const button = document.getElementById("connect-device");
  if (!button) return;
  button.hidden = user?.role !== "operator";
  button.addEventListener("click", () => openDeviceLink());
}

function dialog() {
  if (state.dialog) return state.dialog;
  const close = h("button", { type: "button", onclick: () => el.close() }, "Close");
  const again = h("button", { type: "button", onclick: issue }, "New link");
  const el = h(
    "dialog",
    { id: "device-dialog", class: "device-dialog", "aria-labelledby": "device-title" },
    h("h2", { id: "device-title" }, "Connect a device"),
    h(
      "p",
      { class: "small" },
      "Scan the code with the headset or tablet (or open the link there). It logs that " +
        "device in as you, once.",
    ),
    h("div", { id: "device-qr", class: "device-qr", role: "img", "aria-label": "QR code" }),
    h("p", {}, h("a", { id: "device-url", class: "mono small", href: "#" }, "")),
    h("p", { id: "device-note", class: "small muted" }, ""),
    h("p", { id: "device-warning", class: "small warn", hidden: "" }, ""),
    h("div", { class: "row" }, again, close),
  );
  document.body.append(el);
  state.dialog = el;
  return el;
}

/** Open the dialog with a fresh link (every opening issues a new one). */
export async function openDeviceLink() {
  const el = dialog();
  if (!el.open) el.showModal();
  await issue();
}

async function issue() {
  const el = state.dialog;
  const qr = el.querySelector("#device-qr");
  const url = el.querySelector("#device-url");
  const note = el.querySelector("#device-note");
  const warning = el.querySelector("#device-warning");
  el.dataset.state = "loading";
  try {
    const [link, { renderSVG }] = await Promise.all([
      api("/api/auth/device-link", { method: "POST" }),
      import(QR_MODULE),
    ]);
    qr.innerHTML = renderSVG(link.url, { border: 2, pixelSize: 6 });
    url.textContent = link.url;
    url.href = link.url;
    const valid = fmtDuration(link.expires_in_s);
    note.textContent = `Valid for ${valid}, usable once. "New link" makes another.`;
    warning.hidden = !link.local_only;
    warning.textContent = link.local_only
      ? "This link names this computer's loopback address, which another device cannot " +
        "reach: start the server with --host 0.0.0.0 or set server.public_url."
      : "";
    state.link = link.url;
    state.issued += 1;
    el.dataset.state = "ready";
  } catch (err) {
    qr.replaceChildren();
    url.textContent = "";
    note.textContent = `Could not issue a link: ${err.message}`;
    el.dataset.state = "error";
  }
}
