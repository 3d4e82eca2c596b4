"""Session defaults shared by every page: the data folder, the settings, the chosen k."""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from pathlib import Path

import streamlit as st

from core.engine.backends import Where
from core.engine.pipeline import Settings

DATA_ENV = "DOTMAP_DATA"
MAIN_SCRIPT = "app.py"
K_LIMIT = 40  # the largest k the Overview offers (render.PALETTE has a colour for each)


def default_data_dir() -> str:
    """The folder named at start (``streamlit run app.py -- FOLDER`` or $DOTMAP_DATA); "" means the demo."""
    started_as_app = Path(sys.argv[0]).name == MAIN_SCRIPT  # not, say, pytest running AppTest
    if started_as_app and len(sys.argv) > 1 and sys.argv[1].strip():
        return sys.argv[1].strip()
    return os.environ.get(DATA_ENV, "").strip()


def init_session() -> None:
    """Give every shared key its default once per browser session (each page calls this first)."""
    if "data_dir" not in st.session_state:
        st.session_state["data_dir"] = default_data_dir()
    if "settings" not in st.session_state:
        st.session_state["settings"] = asdict(Settings())
    st.session_state.setdefault("k", None)
    st.session_state.setdefault("where", asdict(Where()))


def current_settings() -> Settings:
    return Settings(**st.session_state["settings"])


def current_where() -> Where:
    """Where preparing runs: this machine, or a Dask cluster (not a setting: the results are the same)."""
    return Where(**st.session_state["where"])


def set_where(where: Where) -> None:
    st.session_state["where"] = asdict(where)


def set_settings(settings: Settings, data_dir: str) -> None:
    if asdict(settings) != st.session_state["settings"] or data_dir != st.session_state["data_dir"]:
        st.session_state["k"] = None  # another result: start again from its recommended k
    st.session_state["settings"] = asdict(settings)
    st.session_state["data_dir"] = data_dir


def chosen_k(ks: list[int], recommended: int) -> int:
    """The k the user last chose on any page, if the current result has it; else the recommended k."""
    k = st.session_state.get("k")
    return k if k in ks else recommended


def remember_k(widget_key: str) -> None:
    """on_change callback of every k widget: one chosen k for all pages."""
    st.session_state["k"] = int(st.session_state[widget_key])
