"""Fake input devices for the browser tests (JavaScript injected before the page loads)."""

from __future__ import annotations

from playwright.sync_api import Page

# Replaces Navigator.prototype.getGamepads with one standard-mapping pad made of plain,
# mutable objects (real Gamepad objects cannot be constructed). Tests change
# window.__pads[0] (axes, buttons[i].pressed/value) with page.evaluate.
GAMEPAD_INIT_SCRIPT = """
(() => {
  const button = () => ({ pressed: false, touched: false, value: 0 });
  const pad = {
    id: "Test pad (STANDARD GAMEPAD)",
    index: 0,
    connected: true,
    mapping: "standard",
    timestamp: 0,
    axes: [0, 0, 0, 0],
    buttons: Array.from({ length: 17 }, button),
    vibrationActuator: null,
  };
  window.__pads = [pad, null, null, null];
  Object.defineProperty(Navigator.prototype, "getGamepads", {
    configurable: true,
    value: function () {
      pad.timestamp = performance.now();
      return window.__pads;
    },
  });
})();
"""


def install_gamepad(page: Page) -> None:
    page.add_init_script(GAMEPAD_INIT_SCRIPT)


def set_pad(
    page: Page, *, axes: list[float] | None = None, pressed: dict[int, bool] | None = None
) -> None:
    """Set stick axes and button states of the fake pad."""
    page.evaluate(
        """([axes, pressed]) => {
          const pad = window.__pads[0];
          if (axes) pad.axes = axes;
          for (const [i, on] of Object.entries(pressed || {})) {
            pad.buttons[Number(i)] = { pressed: on, touched: on, value: on ? 1 : 0 };
          }
        }""",
        [axes, {str(k): v for k, v in (pressed or {}).items()}],
    )
