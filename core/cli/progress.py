"""Progress on the terminal: one tqdm bar per stage, or a ticking clock where a stage cannot count."""

from __future__ import annotations

import sys
import threading


class Progress:
    """One tqdm bar per stage on stderr, off with --quiet or when stderr is not a terminal.

    A stage that cannot count its steps (a UMAP) shows a ticking clock instead of a frozen bar.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.stage = ""
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def __call__(self, done: int, total: int, stage: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        stage, _, loss = stage.partition(" (loss ")  # the encoder's epochs: one bar, its loss beside it
        if stage != self.stage or self.bar is None or bool(self.bar.total) != (total > 1):
            self.close()
            self.stage = stage
            if total <= 1:  # one step: show how long it has been running
                self.bar = tqdm(desc=f"{stage:<22}", file=sys.stderr, leave=False, bar_format="{desc} {elapsed}")
                self._stop.clear()
                self._ticker = threading.Thread(target=self._tick, daemon=True)
                self._ticker.start()
            else:
                self.bar = tqdm(total=total, desc=f"{stage:<22}", file=sys.stderr, leave=False, dynamic_ncols=True)
        if self.bar.total:
            self.bar.n = done
            if loss:
                self.bar.set_postfix_str(f"loss {loss.rstrip(')')}", refresh=False)
            self.bar.refresh()
        if done >= total:
            self.close()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            bar = self.bar
            if bar is not None:
                bar.refresh()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None
