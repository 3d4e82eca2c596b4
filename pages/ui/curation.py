"""The session's curation (the user's named groups): opened from its file, changed by callbacks, saved at once.

The file is the truth: every change is saved before the page draws again, and a page run that
finds the file changed by another tab reads it again. Messages of the last change are kept in
the session and shown once.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import streamlit as st

from core.curation import file as curation_file
from core.curation import prepared
from core.curation.model import Curation, CurationError, most_typical
from core.engine.pipeline import Pipeline
from core.reading.names import shown
from core.representation.typical import group_shape
from pages.ui import page, render

KEY = "curation"  # session: (file path, Curation)
SAID = "curation_said"  # session: (kind, words) of the last change, shown once
VERSION = "curation_version"  # session: bumped by every change; keys the map so its selection is cleared


def file_of(pipeline: Pipeline) -> Path:
    return prepared.default_path(pipeline)


def current(pipeline: Pipeline) -> Curation | None:
    """The session's curation of this folder and settings, read again when its file changed; None if none.

    A file that cannot be read raises CurationError (the page offers what to do).
    """
    path = file_of(pipeline)
    held = st.session_state.get(KEY)
    on_disk = curation_file.stamp_of(path)
    if on_disk is None:
        st.session_state.pop(KEY, None)
        return None
    if held is not None and held[0] == str(path) and held[1].stamp == on_disk:
        return held[1]
    curation = curation_file.load(path, pipeline.image_meta()["paths"])
    st.session_state[KEY] = (str(path), curation)
    return curation


def adopt(pipeline: Pipeline, curation: Curation, what: str) -> None:
    """Make ``curation`` this folder's curation and save it; the file it replaces is kept as the last good one."""
    path = file_of(pipeline)
    curation.stamp = curation_file.stamp_of(path)
    try:
        curation_file.save(curation, path)
    except CurationError as exc:
        say("error", str(exc))
        return
    st.session_state[KEY] = (str(path), curation)
    changed(f"{what}. Saved to {path}.")


def say(kind: str, words: str) -> None:
    st.session_state[SAID] = (kind, words)


def changed(words: str) -> None:
    say("success", words)
    st.session_state[VERSION] = st.session_state.get(VERSION, 0) + 1


def show_said() -> None:
    said = st.session_state.pop(SAID, None)
    if said is not None:
        getattr(st, said[0])(render.text(said[1]))  # names and file names in it: text, never Markdown


def act(change: Callable[..., object], *args: object) -> None:
    """An on_click callback: apply one change to the session's curation and save it; on failure nothing changes."""
    path, curation = st.session_state[KEY]
    try:
        result = change(curation, *args)
    except CurationError as exc:
        say("error", str(exc))
        return
    try:
        curation_file.save(curation, path)
    except CurationError as exc:
        curation.undo()  # the file is the truth: what could not be saved is not kept either
        say("error", str(exc))
        return
    what = result if isinstance(result, str) else curation.history[-1].what if curation.history else "changed"
    changed(f"Done: {what}.")


def undo() -> None:
    path, curation = st.session_state[KEY]
    try:
        what = curation.undo()
        curation_file.save(curation, path)
    except CurationError as exc:
        say("error", str(exc))
        return
    changed(f"Undone: {what}.")


def version() -> int:
    return st.session_state.get(VERSION, 0)


def choose_groups(pipeline: Pipeline, label: str, key: str, column=st) -> Curation | None:
    """On a page that works on the clusters of a k: "your named groups" or "the clusters of a k", offered
    when the folder has a curation with at least one image in a group. Returns the curation when the user
    chose the groups (the default), else None. A curation that cannot be read is said, and the clusters used."""
    try:
        curation = current(pipeline)
    except CurationError as exc:
        st.warning(f"Your named groups cannot be used now: {render.text(exc)} (open the Curate page to mend it).")
        return None
    if curation is None or not np.any(curation.labels >= 0):
        return None
    words = {"groups": "your named groups (Curate page)", "clusters": "the clusters of a k"}
    chosen = column.radio(label, list(words), horizontal=True, key=key, format_func=words.get)
    return curation if chosen == "groups" else None


# ---- starting, importing, mending: the page before there is a curation to draw -----------------
def start_from_k(pipeline: Pipeline, k: int) -> None:
    curation = prepared.from_k(pipeline, k)
    adopt(pipeline, curation, f"Started from the {k} clusters of k = {k}")


def restore_last_good(pipeline: Pipeline) -> None:
    path = file_of(pipeline)
    aside = curation_file.set_aside(path) if path.exists() else None
    try:
        curation = curation_file.load(curation_file.last_good(path), pipeline.image_meta()["paths"])
    except CurationError as exc:
        say("error", str(exc))
        return
    adopt(
        pipeline,
        curation,
        "Opened the last good version" + (f"; the unreadable file is kept as {aside}" if aside else ""),
    )


def import_file(pipeline: Pipeline) -> None:
    upload = st.session_state.get("curation_upload")
    if upload is None:
        return
    try:
        curation = curation_file.from_text(upload.getvalue(), pipeline.image_meta()["paths"], shown(upload.name))
    except CurationError as exc:
        say("error", str(exc))
        return
    notes = " ".join(curation.notes)
    adopt(pipeline, curation, f"Imported {shown(upload.name)} ({len(curation.names)} groups). {notes}".strip())


def start_panel(pipeline: Pipeline, k_key: str) -> None:
    k = page.k_select(pipeline.sweep(), key=k_key, label="Start from the clusters of k =")
    st.button(
        f"Start from the {k} clusters", on_click=start_from_k, args=(pipeline, k), key=f"{k_key}_start", type="primary"
    )


def copy_other(pipeline: Pipeline, path: str) -> None:
    try:
        curation = curation_file.load(path, pipeline.image_meta()["paths"])
    except CurationError as exc:
        say("error", str(exc))
        return
    curation.settings, curation.history = asdict(pipeline.settings), []
    adopt(pipeline, curation, f"Copied the curation made with other settings ({shown(path)})")


def other_settings_panel(pipeline: Pipeline) -> None:
    """Curations of this folder made with other settings: the groups are of images, so they can be copied here."""
    others = prepared.others(pipeline)
    if not others:
        return
    st.markdown(f"This folder has {len(others)} curation(s) made with other settings:")
    for i, path in enumerate(others[:5]):
        label = f"Copy {render.text(path.name)} here"
        st.button(label, on_click=copy_other, args=(pipeline, str(path)), key=f"copy_other_{i}")


def import_panel(pipeline: Pipeline) -> None:
    st.file_uploader(
        "Import a curation file (JSON, as downloaded here)",
        type=["json"],
        key="curation_upload",
        on_change=import_file,
        args=(pipeline,),
    )


def unreadable(pipeline: Pipeline, exc: CurationError) -> None:
    st.error(render.text(exc))
    st.markdown("The file is not changed by anything below: it is moved aside, never deleted.")
    left, right = st.columns(2)
    with left:
        if curation_file.last_good(file_of(pipeline)).exists():
            st.button(
                "Open the last good version",
                on_click=restore_last_good,
                args=(pipeline,),
                key="restore",
                type="primary",
            )
    with right, st.expander("Or start again"):
        start_panel(pipeline, "k_restart_broken")


# ---- what the page draws of the groups, cached by their members ------------------------------
def _digest(rows: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rows, np.int64).tobytes()).hexdigest()[:24]


@st.cache_resource(max_entries=512, show_spinner=False)
def _shape(key: str, members: str, _pipeline: Pipeline, _rows: np.ndarray) -> np.ndarray:
    images, s = _pipeline.images(), _pipeline.settings
    return group_shape(images.packed, images.grid, s.features, _rows, seed=s.seed)


def shape(pipeline: Pipeline, rows: np.ndarray) -> np.ndarray:
    """The typical shape of a group of images (a sample's mean: typical.group_shape), kept per membership."""
    return _shape(pipeline.key("images"), _digest(rows), pipeline, rows)


def shapes(pipeline: Pipeline, dense: np.ndarray, count: int) -> np.ndarray:
    """(count, cells, cells): the typical shape of every group index 0..count-1 of ``dense`` labels."""
    return np.stack([shape(pipeline, np.flatnonzero(dense == g)) for g in range(count)]) if count else np.zeros(0)


def typical_rows(pipeline: Pipeline, rows: np.ndarray, count: int) -> np.ndarray:
    """The members closest to the group's mean in the cluster space."""
    return most_typical(pipeline.space(), rows, count)


def thumbnail_uris(masks: np.ndarray, side: int = 56) -> list[str]:
    """Each ink mask (m, g, g) as a small PNG data URI, for an image column of a table."""
    from PIL import Image

    uris = []
    for small in render.shrink_keeping_dots(np.asarray(masks, bool), side):
        out = io.BytesIO()
        Image.fromarray(np.where(small, render.INK, 255).astype(np.uint8)).save(out, format="PNG")
        uris.append(render.png_data_uri(out.getvalue()))
    return uris
