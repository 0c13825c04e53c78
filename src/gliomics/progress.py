"""Progress bars for long work (tqdm; silent when output is not a terminal)."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator

from tqdm import tqdm


@contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``(done, total)`` callback that drives a tqdm bar on stderr."""
    with tqdm(total=total, desc=description, unit="it", disable=None, leave=False) as bar:

        def update(done: int, total_now: int) -> None:
            if bar.total != total_now:  # callers may learn the total only once work starts
                bar.total = total_now
            bar.update(done - bar.n)

        yield update


def epoch_line(section: str, epoch: int, epochs: int, row: dict, monitor: str, best: tuple[float, int] | None) -> str:
    """One progress line per validated epoch (printed whether or not the output is a terminal); ``best`` None
    for a final fit, whose monitored patients are trained on and whose last epoch is kept."""
    loss = row.get("loss", math.nan)
    score = row.get(monitor, math.nan)
    kept = "(trained on; last epoch kept)" if best is None else f"(best {best[0]:.3f} at epoch {best[1]})"
    return (f"{section}: epoch {epoch}/{epochs}  loss {float(loss):.4f}  {monitor} {float(score):.3f}  "
            f"{kept}  {float(row.get('seconds', 0)):.0f}+{float(row.get('val_seconds', 0)):.0f} s")
