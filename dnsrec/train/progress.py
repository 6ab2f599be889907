"""A dependency-free progress line: steps, loss, throughput; redraws in place on a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str, enabled: bool = True, stream: TextIO | None = None) -> None:
        # sys.stderr of now, not of import time (a redirected stream may since have been closed)
        stream = stream or sys.stderr
        self.total, self.label, self.enabled, self.stream = total, label, enabled, stream
        self.tty = stream.isatty()
        self.start = self.last_draw = time.perf_counter()
        self.done = 0

    def update(self, steps: int, **fields: float) -> None:
        self.done += steps
        now = time.perf_counter()
        # On a terminal redraw ~4x a second; in a log file write a line every 30 s so logs stay small.
        if not self.enabled or (now - self.last_draw < (0.25 if self.tty else 30.0) and self.done < self.total):
            return
        self.last_draw = now
        elapsed = now - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        shown = " ".join(f"{k}={v:.4g}" for k, v in fields.items())
        line = f"{self.label} {self.done}/{self.total} {shown} [{elapsed:.0f}s<{eta:.0f}s]"
        self.stream.write(("\r" + line + " " * 4) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
