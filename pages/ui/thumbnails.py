"""Pages of thumbnails: a page picker over many images, and the page picked drawn as one montage."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import streamlit as st

from core.engine.pipeline import Pipeline
from pages.ui import data, render


def page_of(rows: np.ndarray, per_page: int, key: str) -> np.ndarray:
    """The row ids of the page the user picks of ``rows`` (m,), ``per_page`` a page (the picker is drawn
    only when there is more than one page)."""
    pages = max(1, -(-len(rows) // per_page))
    number = st.number_input(f"Page (of {pages})", 1, pages, 1, key=key) if pages > 1 else 1
    return rows[(number - 1) * per_page : number * per_page]


def show_page(
    pipeline: Pipeline,
    rows: np.ndarray,
    per_page: int,
    key: str,
    tag: Callable[[int], str] | None = None,
    groups: np.ndarray | None = None,
    columns: int = 12,
    side: int = render.THUMB_PX,
) -> None:
    """The picked page of ``rows`` (:func:`page_of`) as one montage, each image captioned with its file name.

    ``tag(row)`` is written after the name (its cluster, its group); ``groups`` (n,), one label per
    image of the set, frames each thumbnail in its group's colour (-1: grey).
    """
    shown = page_of(rows, per_page, key)
    names = data.paths(pipeline)
    captions = [names[r].rsplit("/", 1)[-1] + (f" ·{tag(r)}" if tag else "") for r in shown]
    frames = [render.colour(int(g)) for g in groups[shown]] if groups is not None else None
    st.image(render.montage(data.image_set(pipeline).unpack(shown), captions, columns, side, frames))
