"""Clock-offset estimates between a sender's clock and ours, to age stamped inputs.

A sender stamps each input with its own clock (``t_input``); we receive it at ``now``
on ours. ``now - t_input`` is the clock offset plus the message's delay. Its minimum
over time is the offset plus the smallest delay seen, so ``t_input + offset`` is the
input time on our clock, at most that smallest delay early. A message held up by a
frozen sender, a frozen network or a frozen receiver arrives with a large
``now - t_input``; it does not move the minimum and its age shows how old it is.

The minimum may rise by at most ``drift`` seconds per second (two crystal clocks drift
by well under 1e-4), so a long freeze cannot make its own backlog look fresh, as a
minimum over a sliding window would once the freeze outlasts the window. Pure:
every time is an argument.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

MAX_DRIFT = 1e-3  # s/s: ten times the drift of two ordinary clocks


class ClockOffset:
    """The offset ``our clock - sender clock`` (seconds), as the drift-bounded minimum."""

    def __init__(self, drift: float = MAX_DRIFT) -> None:
        self.drift = drift
        self.offset: float | None = None
        self._t: float = 0.0  # our time of the last update

    def update(self, t_sender: float, now: float) -> float:
        """Take one sample (sender stamp, our receipt time); return the new offset."""
        sample = now - t_sender
        if self.offset is None:
            self.offset = sample
        else:
            allowed = self.offset + self.drift * max(0.0, now - self._t)
            self.offset = min(allowed, sample)
        self._t = now
        return self.offset

    def local(self, t_sender: float, now: float) -> float:
        """``t_sender`` on our clock, after taking this sample into the estimate."""
        return t_sender + self.update(t_sender, now)


class LinkClocks:
    """One ``ClockOffset`` per sender (e.g. a ZMQ routing id), the ``limit`` most recent kept."""

    def __init__(self, limit: int = 64, drift: float = MAX_DRIFT) -> None:
        self.limit = limit
        self.drift = drift
        self._links: OrderedDict[Hashable, ClockOffset] = OrderedDict()

    def update(self, sender: Hashable, t_sender: float, now: float) -> float:
        """Take a sample of ``sender``'s clock (its send time, our receipt time); its offset."""
        clock = self._links.pop(sender, None) or ClockOffset(self.drift)
        self._links[sender] = clock
        while len(self._links) > self.limit:
            self._links.popitem(last=False)
        return clock.update(t_sender, now)

    def __len__(self) -> int:
        return len(self._links)
