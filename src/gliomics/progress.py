"""Progress bars for long work (tqdm; silent when output is not a terminal)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``(done, total)`` callback that drives a tqdm bar on stderr."""
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit="it", disable=None, leave=False) as bar:

        def update(done: int, total_now: int) -> None:
            if bar.total != total_now:  # callers may learn the total only once work starts
                bar.total = total_now
            bar.update(done - bar.n)

        yield update
