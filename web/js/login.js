// The login screen shown by every page when there is no session: a name/password form
// (POST /api/auth/login) and how to use the one-time link that the server prints.

import { ApiError, api, storeSession } from "./net.js";
import { h } from "./ui.js";

/**
 * Cover the page with a login form; resolves to the user (GET /api/auth/me) once logged in,
 * after which the overlay is removed and the page starts as if it had had a session.
 * `problem`: a line shown above the form (e.g. why a login link did not work).
 */
export function loginScreen(problem = null) {
  return new Promise((resolve) => {
    const error = h("p", { id: "login-error", class: "login-error", role: "alert" });
    error.hidden = !problem;
    error.textContent = problem ?? "";
    const name = h("input", {
      id: "login-name",
      name: "username",
      autocomplete: "username",
      required: "",
    });
    const password = h("input", {
      id: "login-password",
      name: "password",
      type: "password",
      autocomplete: "current-password",
      required: "",
    });
    const submit = h("button", { id: "login-submit", type: "submit", class: "primary" }, "Log in");
    const form = h(
      "form",
      { id: "login-form", class: "panel login" },
      h("h1", {}, "Log in to Tandem"),
      h("p", { class: "small muted" }, "This dashboard drives a robot: log in to see and use it."),
      error,
      h("label", {}, "Name", name),
      h("label", {}, "Password", password),
      submit,
      h(
        "p",
        { class: "small muted" },
        "Or open the one-time login link that ",
        h("code", {}, "tandem server"),
        " (or ",
        h("code", {}, "tandem up"),
        ") printed in its console. Each link works once; on the server's machine, ",
        h("code", {}, "tandem login-link"),
        " prints a new one.",
      ),
    );
    const overlay = h("div", { id: "login", class: "login-overlay" }, form);
    document.body.append(overlay);
    document.body.classList.add("logged-out");
    name.focus();
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      try {
        const body = { name: name.value.trim(), password: password.value };
        const { token } = await api("/api/auth/login", { method: "POST", body });
        storeSession(token);
        const user = await api("/api/auth/me");
        overlay.remove();
        document.body.classList.remove("logged-out");
        resolve(user);
      } catch (err) {
        error.textContent =
          err instanceof ApiError && err.status === 401
            ? "Wrong name or password."
            : `Could not log in: ${err instanceof ApiError ? err.detail : err.message}`;
        error.hidden = false;
        password.select();
      } finally {
        submit.disabled = false;
      }
    });
  });
}
