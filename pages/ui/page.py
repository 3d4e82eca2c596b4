"""The menu of pages, what every page does first (config, session defaults, the sidebar) and the shared k picker."""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st
from streamlit.navigation.page import StreamlitPage
from streamlit.runtime.pages_manager import PagesManager

from core.curation.model import Curation
from core.engine.pipeline import Pipeline, Sweep
from core.errors import DotmapError
from core.outputs.export import zip_of_files
from pages.ui import data, render, state

APP_NAME = "Dotmap"


# the menu of menu.py in its order; a page is named after its file (2_Choose_k.py: "Choose k"). No icons:
# a page's icon is also the browser tab's, and Streamlit fetches a material one from a font server
# outside this computer (tests/e2e/test_outside_requests.py routes every request to see it); an emoji
# needs a font many Linux machines lack
PAGES = (
    "pages/0_Overview.py",
    "pages/1_Map.py",
    "pages/2_Choose_k.py",
    "pages/3_Clusters.py",
    "pages/4_Curate.py",
    "pages/5_Classify.py",
    "pages/6_Export.py",
    "pages/7_Compare.py",
)


def setup(title: str) -> None:
    """What every page does first, itself rather than menu.py (AppTest runs a page alone)."""
    _through_the_menu()
    st.set_page_config(page_title=f"{title} · {APP_NAME}", layout="wide")
    state.init_session()


_MENU_RAN = "_dotmap_menu_ran"


def navigation() -> StreamlitPage:
    """menu.py's menu of PAGES; it notes in the session that this session has run menu.py."""
    st.session_state[_MENU_RAN] = True
    return st.navigation([st.Page(path) for path in PAGES])


def _through_the_menu() -> None:
    """Run this page again through menu.py's menu if Streamlit ran it alone.

    Until menu.py has run once in a server, Streamlit treats a folder named pages/ as its old multipage
    folder: a page opened by its address runs without menu.py, under a menu made from the folder (with
    menu.py as "app"). ``st.navigation`` turns that off for the server; a rerun then goes through menu.py,
    which opens the same page (a page's id is its address) under the menu of PAGES.

    Only a session that has not run menu.py yet is sent there: AppTest sets the old folder mode again
    before every run, and a rerun there would drop the run's button click.
    """
    if getattr(PagesManager, "uses_pages_directory", False) and not st.session_state.get(_MENU_RAN):
        PagesManager.uses_pages_directory = False
        st.rerun()


def start(label: str, heading: str, need: tuple[str, ...] = ("sweep",)) -> Pipeline:
    """A page's opening: its config, its heading, and the data with the stages it ``need``s
    (until they are prepared, the page shows the background job's progress and stops)."""
    setup(label)
    st.title(heading)
    pipeline = data.ready_pipeline(need)
    sidebar(pipeline, data.is_demo(pipeline))
    return pipeline


def sidebar(pipeline: Pipeline, demo: bool) -> None:
    """Which data and settings the pages show, in a few words."""
    s = pipeline.settings
    with st.sidebar:
        st.markdown(f"**Data**: {'built-in demo' if demo else render.text(pipeline.inventory.root.name)}")
        st.caption(
            f"{len(pipeline.inventory.files)} {pipeline.inventory.kind}s · features `{s.features}` · "
            f"{s.components} components · {s.algorithm} · k {s.k_min}..{s.k_max} · cluster space {s.cluster_space}"
        )
        while pipeline.cache.notes:  # a broken cache entry met while loading: it was recomputed
            st.info(f"Cache: {render.text(pipeline.cache.notes.pop(0))}")


def k_slider(sweep: Sweep, key: str, label: str = "Number of clusters k") -> int:
    """A k slider that starts at the k chosen on any page (or the recommended one) and remembers moves."""
    k = state.chosen_k(sweep.ks, sweep.recommended_k)
    if sweep.ks[0] == sweep.ks[-1]:
        st.caption(f"k = {k} (the only k prepared)")
        return k
    return int(
        st.slider(
            label,
            min_value=sweep.ks[0],
            max_value=sweep.ks[-1],
            value=k,
            key=key,
            on_change=state.remember_k,
            args=(key,),
            help=f"Recommended: k = {sweep.recommended_k} (see the Choose k page for why).",
        )
    )


def k_select(sweep: Sweep, key: str, label: str = "k") -> int:
    """The same choice as :func:`k_slider`, as a drop-down (for pages where k is set once)."""
    k = state.chosen_k(sweep.ks, sweep.recommended_k)
    return int(
        st.selectbox(
            label,
            sweep.ks,
            index=sweep.ks.index(k),
            key=key,
            on_change=state.remember_k,
            args=(key,),
            format_func=lambda v: f"{v} (recommended)" if v == sweep.recommended_k else str(v),
        )
    )


def zip_download(
    pipeline: Pipeline,
    k: int | None,
    rows: np.ndarray | None,
    key: str,
    file_name: str,
    curation: Curation | None = None,
) -> None:
    """A button that packs the images into a zip here on the page (with a spinner, and an error in words
    if a file has gone), then offers it for download. The zip is kept until k or the images change.
    With a ``curation`` (k None) the folders are its named groups; a change to it makes a new zip."""
    if pipeline.inventory.array is not None:
        st.caption("The images of an array set are rows, not files: the CSV's row column says where each one is.")
        return
    count = len(rows) if rows is not None else len(pipeline.image_meta()["paths"])
    token = f"{pipeline.key('sweep')}:{k}:{'all' if rows is None else hashlib.sha256(rows.tobytes()).hexdigest()}"
    if curation is not None:
        token += f":{hashlib.sha256(curation.labels.tobytes() + repr(curation.names).encode()).hexdigest()}"
    made = st.session_state.get(key)
    if made is None or made[0] != token:
        by = "group" if curation is not None else "cluster"
        if not st.button(f"Make a zip of {count:,} images by {by}", key=f"{key}_make", icon=":material/folder_zip:"):
            return
        with st.spinner(f"Packing {count:,} images"):
            try:
                packed = zip_of_files(pipeline, k, rows, curation=curation)
            except DotmapError as exc:
                st.error(render.text(exc))
                return
        made = st.session_state[key] = (token, packed)
    st.download_button(
        f"Download {file_name} ({len(made[1]) / 2**20:.1f} MB)",
        made[1],
        file_name=file_name,
        mime="application/zip",
        icon=":material/download:",
        on_click="ignore",
        key=f"{key}_download",
    )
