// Start-up shared by every page: header navigation, login from ?token=, who is logged in.

import { wireDeviceLink } from "./devicelink.js";
import { loginScreen } from "./login.js";
import { ApiError, api, login } from "./net.js";
import { $, markNav, toast } from "./ui.js";

/**
 * Mark the nav, exchange a one-time ?token=, and show the user; resolves to the user, or null
 * when the server cannot be reached. Without a session the login screen covers the page and
 * this resolves only once the user has logged in (js/login.js).
 */
export async function startPage() {
  markNav();
  let problem = null;
  try {
    await login();
  } catch (err) {
    const why = err instanceof ApiError ? err.detail : err.message;
    problem = `That login link did not work (${why}).`;
  }
  const badge = document.getElementById("user");
  let user = null;
  try {
    user = await api("/api/auth/me");
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) {
      if (badge) badge.textContent = "server unreachable";
      toast(`Cannot reach the server: ${err.message}`, { error: true });
      return null;
    }
    if (badge) badge.textContent = "not logged in";
    user = await loginScreen(problem);
    problem = null;
  }
  if (problem) toast(problem, { error: true });
  if (badge) badge.textContent = `${user.name} (${user.role})`;
  wireDeviceLink(user);
  return user;
}

/** Show the connection state of the page's sockets on the #link badge. */
export function setLink(up) {
  const el = $("link");
  el.textContent = up ? "connected" : "disconnected";
  el.className = `badge ${up ? "ok" : "bad"}`;
}
