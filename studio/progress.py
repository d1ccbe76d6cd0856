"""Progress bars that suit where they are written: live on a terminal, a few whole lines in a log.

Why: tqdm redraws its bar with carriage returns, and a redirected stream keeps every redraw, so
``make demo > log 2>&1`` wrote thousands of bar states. ``progress_bar`` is the one place every job makes
its bar
(PPO training, the rater's epochs, the data build, dreaming, evaluation): on a terminal it is plain tqdm;
anywhere else it writes one line when the count has advanced at least ``LINE_FRACTION`` of the total since
the last line, or ``LINE_SECONDS`` have passed, plus one line at the start and one at the end.
Imports nothing from the project.
"""

from __future__ import annotations

import math
import os
import sys
import time

from tqdm import tqdm

LINE_FRACTION = 0.10  # off a terminal: a line every >= 10 % of the total ...
LINE_SECONDS = 30.0  # ... or every >= 30 s, whichever comes first
LOG_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
MODE_ENV = "EARWORM_PROGRESS"  # "live" or "lines" forces a mode; unset = live exactly when the stream is a terminal


class LineProgress(tqdm):
    """A tqdm that prints whole lines, rarely: at the start, every ``fraction`` of the total or ``seconds``
    (whichever comes first) and at the end. The same interface as tqdm (iterate, ``update``, ``n`` +
    ``refresh``, ``set_postfix``, ``close``), so callers never know which one they hold."""

    def __init__(self, *args, fraction: float = LINE_FRACTION, seconds: float = LINE_SECONDS, **kwargs):
        if not 0 < fraction <= 1 or seconds <= 0:
            raise ValueError(f"Need 0 < fraction <= 1 and seconds > 0, got fraction={fraction}, seconds={seconds}.")
        self._fraction, self._seconds = fraction, seconds
        self._printed_n: float | None = None
        self._printed_t = -math.inf
        # Every update reaches display(), which decides cheaply whether a line is due.
        kwargs.update(mininterval=0.0, miniters=1, dynamic_ncols=False)
        kwargs.setdefault("bar_format", LOG_FORMAT)
        super().__init__(*args, **kwargs)

    def _due(self) -> bool:
        if self._printed_n is None:
            return True
        if self.n == self._printed_n:
            return False
        if time.monotonic() - self._printed_t >= self._seconds:
            return True
        if self.total:
            step = self._fraction * self.total
            reached_end = self._printed_n < self.total <= self.n
            return reached_end or math.floor(self.n / step) > math.floor(self._printed_n / step)
        return False

    def display(self, msg=None, pos=None):
        if msg is not None:  # tqdm clearing its line: nothing to clear in a log
            return False
        if self._due():
            line = self.format_meter(**self.format_dict) if self.total and self.n <= self.total else self._untotalled()
            self.fp.write(line + "\n")
            self.fp.flush()
            self._printed_n, self._printed_t = self.n, time.monotonic()
        return True

    def _untotalled(self) -> str:
        d = self.format_dict
        rate = d["rate"] or (d["n"] / d["elapsed"] if d["elapsed"] else 0.0)
        desc = f"{d['prefix']}: " if d["prefix"] else ""
        return f"{desc}{d['n']:g} {d['unit']} [{self.format_interval(d['elapsed'])}, {rate:.2f} {d['unit']}/s]"

    def close(self):
        if not self.disable and self._printed_n != self.n:
            self._printed_t = -math.inf
            self.display()
        self.leave = False  # tqdm would otherwise redraw and add a newline
        super().close()


def is_live(stream=None) -> bool:
    """Live bars on a terminal, lines elsewhere; ``$EARWORM_PROGRESS`` = live or lines overrides."""
    forced = os.environ.get(MODE_ENV, "").strip().lower()
    if forced in ("live", "lines"):
        return forced == "live"
    if forced:
        raise ValueError(f"${MODE_ENV} must be 'live' or 'lines' (or unset), got {forced!r}.")
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable=None, desc: str | None = None, total: float | None = None, *, disable: bool = False,
             file=None, fraction: float = LINE_FRACTION, seconds: float = LINE_SECONDS, **kwargs) -> tqdm:
    """A progress bar over ``iterable`` (or updated by hand up to ``total``), written to ``file`` (stderr).

    On a terminal: tqdm's live bar. Elsewhere (a pipe, a file): a ``LineProgress`` writing at most about
    ``1 / fraction + 2`` lines plus one per ``seconds`` of wall time. Other keyword arguments go to tqdm.
    """
    if is_live(file):
        return tqdm(iterable, desc, total, disable=disable, file=file, **kwargs)
    return LineProgress(iterable, desc, total, disable=disable, file=file, fraction=fraction, seconds=seconds, **kwargs)
