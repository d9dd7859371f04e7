// Start-up shared by every page: header navigation, login from ?token=, who is logged in.

import { ApiError, api, login } from "./net.js";
import { $, markNav, toast } from "./ui.js";

/** Mark the nav, exchange a one-time ?token=, and show the user; resolves to the user or null. */
export async function startPage() {
  markNav();
  try {
    await login();
  } catch (err) {
    toast(`Login failed: ${err.message}`, { error: true });
  }
  const badge = document.getElementById("user");
  try {
    const user = await api("/api/auth/me");
    if (badge) badge.textContent = `${user.name} (${user.role})`;
    return user;
  } catch (err) {
    const loggedOut = err instanceof ApiError && err.status === 401;
    if (badge) badge.textContent = loggedOut ? "not logged in" : "server unreachable";
    toast(
      loggedOut
        ? "Not logged in: open the login link that `tandem server` printed."
        : `Cannot reach the server: ${err.message}`,
      { error: true },
    );
    return null;
  }
}

/** Show the connection state of the page's sockets on the #link badge. */
export function setLink(up) {
  const el = $("link");
  el.textContent = up ? "connected" : "disconnected";
  el.className = `badge ${up ? "ok" : "bad"}`;
}
