// HTTP and WebSocket plumbing shared by every page: login, REST calls, reconnecting sockets.

const SESSION_KEY = "tandem.session";

/** The session token stored after login, or null. */
export function sessionToken() {
  return localStorage.getItem(SESSION_KEY);
}

/** Keep the session token for REST calls (the login response also sets the cookie). */
export function storeSession(token) {
  localStorage.setItem(SESSION_KEY, token);
}

/**
 * Exchange a one-time `?token=` from the URL for a session token, store it and
 * strip the token from the address bar. Resolves to the session token (or null).
 */
export async function login() {
  const url = new URL(location.href);
  const once = url.searchParams.get("token");
  if (once) {
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
    const res = await fetch("/api/auth/exchange", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: once }),
    });
    if (res.ok) {
      const body = await res.json();
      storeSession(body.token);
    } else {
      throw new ApiError(res.status, await errorText(res));
    }
  }
  return sessionToken();
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(`HTTP ${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

async function errorText(res) {
  try {
    const body = await res.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
  } catch {
    return res.statusText;
  }
}

function authHeaders() {
  const token = sessionToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** Call the REST API; resolves to the parsed JSON body (or null for 204). */
export async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = authHeaders();
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (!res.ok) throw new ApiError(res.status, await errorText(res));
  if (raw) return res;
  if (res.status === 204) return null;
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.text();
}

/** Absolute ws:// or wss:// URL for a server path, carrying the session token. */
export function wsUrl(path, params = {}) {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  // The session cookie set at login authenticates WebSockets (same origin).
  return url.href;
}

/**
 * A WebSocket that reconnects with exponential backoff (0.5 s doubling to 8 s).
 * Handlers: onopen(), onclose(), onjson(obj) for text frames, onbinary(ArrayBuffer).
 */
export class Socket {
  constructor(path, params = {}, handlers = {}) {
    this.path = path;
    this.params = params;
    this.handlers = handlers;
    this.delay = 500;
    this.closed = false;
    this.ws = null;
    this.connect();
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    const ws = new WebSocket(wsUrl(this.path, this.params));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 500;
      this.handlers.onopen?.();
    };
    ws.onmessage = (ev) => this.dispatch(ev.data);
    ws.onclose = () => {
      this.handlers.onclose?.();
      if (this.closed) return;
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 8000);
    };
    // Errors are followed by close; the close handler reconnects.
    ws.onerror = () => {};
  }

  dispatch(data) {
    if (typeof data !== "string") {
      this.handlers.onbinary?.(data);
      return;
    }
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      console.warn(`${this.path}: ignoring a text frame that is not JSON`);
      return;
    }
    this.handlers.onjson?.(msg);
  }

  /** Send a JSON message; returns false when the socket is not open. */
  send(obj) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  close() {
    this.closed = true;
    this.ws?.close();
  }
}
