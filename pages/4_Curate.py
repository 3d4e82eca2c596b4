"""Curate: turn the clusters into the user's own named groups (name, merge, split, move, outliers, undo)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.curation import file as curation_file
from core.curation.model import (
    OUTLIER,
    SPLIT_MAX,
    UNASSIGNED,
    Curation,
    CurationError,
    group_story,
    split_parts,
)
from core.engine.pipeline import Pipeline
from core.reading.names import shown
from pages.ui import curation as cur
from pages.ui import data, mapview, page, render, thumbnails, timing

STORY_WHOLE = 0.9  # "in one cluster" at a k: at least this share of the group's images
STORY_ALONE = 0.8  # a cluster "is this group" when at least this share of its images are the group's
SHOWN_SELECTED = 48  # thumbnails a page of a map selection (a move takes all of it)
CARD_THUMBS = 8  # most typical members on a group's card
BROWSE_PAGE = 60  # members per page when browsing a group to pick images
NEW_GROUP = "new"
RENAME, SPLIT, ACROSS_K, BROWSE = "Rename", "Split", "Across k", "Browse and move"

pipeline = page.start("Curate", "Curate your groups", need=("sweep",))
sweep = data.sweep(pipeline)
names = data.paths(pipeline)


@st.fragment
def curation_view(pipeline: Pipeline) -> None:
    """Everything of the curation: a change (a callback) reruns this part only, not the page with its folder scan."""
    with timing.timed("curate view"):
        cur.show_said()
        try:
            curation = cur.current(pipeline)
        except CurationError as exc:
            cur.unreadable(pipeline, exc)
            return
        if curation is None:
            st.info(
                "A curation is your own grouping of the images: start from the clusters of a k, then name groups, "
                "merge them, split one, move images between them or mark them as outliers. Every change is saved "
                f"at once in a file of yours (not the cache): {render.text(cur.file_of(pipeline))}, and can be undone."
            )
            cur.start_panel(pipeline, "k_curate_start")
            cur.import_panel(pipeline)
            cur.other_settings_panel(pipeline)
            return
        View(curation).draw()


class View:
    """One drawing of the curation: its map, its groups and their actions (callbacks change the session's copy)."""

    def __init__(self, curation: Curation) -> None:
        self.curation = curation
        self.dense, self.group_names = curation.dense()

    def draw(self) -> None:
        curation = self.curation
        n_out, n_free = int(np.sum(curation.labels == OUTLIER)), int(np.sum(curation.labels == UNASSIGNED))
        st.caption(
            f"{len(self.group_names)} groups · {n_out:,} outliers · {n_free:,} unassigned · started from k = "
            f"{curation.started_from_k} · saved in {render.text(cur.file_of(pipeline))}"
        )
        for note in curation.notes:
            st.info(render.text(note))
        self.toolbar()
        self.curated_map()
        with st.expander("Move images by name (a list of paths, one per line)"):
            listed = st.text_area("Paths relative to the image folder, as in the exported CSV", key="by_name")
            named, unknown = rows_named(listed)
            if unknown:
                st.warning(
                    f"{len(unknown):,} names are not images of this set: "
                    + ", ".join(render.text(u) for u in unknown[:5])
                )
            if len(named):
                self.move_bar(named, "name_move")
        st.markdown("### The groups")
        self.merge_bar()
        for index, group in enumerate(curation.names):
            self.group_card(group, index)
        for group in (OUTLIER, UNASSIGNED):
            if np.any(curation.labels == group):
                self.group_card(group, None)

    def toolbar(self) -> None:
        curation = self.curation
        bar = st.columns([2, 2, 2, 3])
        last = curation.history[-1].what if curation.history else None
        bar[0].button(
            f"Undo: {render.text(last)}" if last else "Nothing to undo",
            on_click=cur.undo,
            disabled=last is None,
            key="undo",
            icon=":material/undo:",
            help=f"{len(curation.history)} steps can be undone" if last else None,
        )
        bar[1].download_button(
            "Download the curation (JSON)",
            lambda: curation_file.to_text(curation),  # made on click (1.2 MB at 32,000 images), not on every run
            file_name=cur.file_of(pipeline).name,
            mime="application/json",
            icon=":material/download:",
            on_click="ignore",
            key="curation_download",
        )
        with bar[2].popover("Import or start again", icon=":material/upload_file:"):
            cur.import_panel(pipeline)
            st.caption("Starting again keeps the current curation as the last good version beside the file.")
            cur.start_panel(pipeline, "k_restart")

    def move_bar(self, rows: np.ndarray, key: str) -> None:
        """Move ``rows`` to a group, a new group, the outliers or the unassigned."""
        names = self.curation.names
        options = [*names, NEW_GROUP, OUTLIER, UNASSIGNED]
        words = {NEW_GROUP: "a new group…", OUTLIER: "outliers (in no group)", UNASSIGNED: "unassigned"}
        left, middle, right = st.columns([3, 3, 2])
        target = left.selectbox(
            f"Move the {len(rows):,} selected images to", options, key=f"{key}_to",
            format_func=lambda g: words.get(g) or names[g],
        )  # fmt: skip
        name = middle.text_input("Name of the new group", key=f"{key}_name", disabled=target != NEW_GROUP)
        if target == NEW_GROUP:
            right.button(
                "Make the group", key=f"{key}_go", on_click=cur.act, args=(Curation.new_group, name, rows),
                type="primary",
            )  # fmt: skip
        else:
            right.button("Move", key=f"{key}_go", on_click=cur.act, args=(Curation.move, rows, target), type="primary")

    def curated_map(self) -> None:
        curation, dense, group_names = self.curation, self.dense, self.group_names
        with timing.timed("curate map"):
            layout = "umap" if pipeline.is_cached("map") else "pca"
            with_shapes = st.toggle("Typical shapes on the map", value=True, key="curate_shapes")
            xy = data.layout(pipeline, layout)
            rows = mapview.show_map(
                pipeline,
                xy,
                dense,
                len(group_names),
                f"{len(names):,} images in {len(group_names)} named groups (grey: outliers and unassigned)",
                f"curate_map_{cur.version()}",  # a change clears the selection it acted on
                f"{layout}:{pipeline.key('map' if layout == 'umap' else 'reduction')}",
                word="group",
                shapes=cur.shapes(pipeline, dense, len(group_names)) if with_shapes else None,
                group_names=group_names,
                note="Colours follow the list of groups below. Hover to see an image; select with Lasso or Box "
                "(or shift + drag), then move them below; double-click or Esc clears the selection.",
            )
        if len(rows) == 0:
            return
        groups_of = {**curation.names, OUTLIER: "outlier", UNASSIGNED: "unassigned"}
        picked = [groups_of[int(g)] for g in curation.labels[rows]]
        counts = {g: picked.count(g) for g in dict.fromkeys(picked)}
        st.markdown(
            f"**{len(rows):,} images selected** ("
            + ", ".join(f"{render.text(g)}: {c}" for g, c in counts.items())
            + ")"
        )
        thumbnails.show_page(
            pipeline, rows, SHOWN_SELECTED, "selection_page", tag=lambda r: groups_of[int(curation.labels[r])],
            groups=dense,
        )  # fmt: skip
        if len(rows) > SHOWN_SELECTED:
            st.caption(f"{SHOWN_SELECTED} images a page; a move takes all {len(rows):,}.")
        self.move_bar(rows, "map_move")

    def merge_bar(self) -> None:
        names = self.curation.names
        left, right = st.columns([4, 1])
        chosen = left.multiselect(
            "Merge groups (into the first one chosen)",
            list(names),
            format_func=lambda g: names[g],
            key=f"merge_{cur.version()}",
        )
        right.button(
            "Merge", on_click=cur.act, args=(Curation.merge, chosen), disabled=len(chosen) < 2, key="merge_go",
            type="primary",
        )  # fmt: skip

    def split_preview(self, group: int) -> None:
        held = st.session_state.get("split_preview")
        if held is None or held[0] != group or held[1] != cur.version():
            return
        parts = held[2]
        members = self.curation.members(group)
        count = int(parts.max()) + 1
        st.markdown(
            f"**Preview: {render.text(self.curation.names[group])} in {count} parts** "
            "(nothing is changed until you apply it)"
        )
        for part, column in enumerate(st.columns(count)):
            rows = members[parts == part]
            column.image(
                render.density_image(cur.shape(pipeline, rows), 110), caption=f"part {part + 1}: {len(rows):,}"
            )
            column.image(
                render.montage(data.image_set(pipeline).unpack(cur.typical_rows(pipeline, rows, 4)), columns=2, side=52)
            )
        left, right = st.columns(2)
        left.button(
            "Apply the split", on_click=apply_split, args=(group, parts), key=f"split_apply_{group}", type="primary"
        )
        right.button("Discard", on_click=lambda: st.session_state.pop("split_preview", None), key=f"split_drop_{group}")

    def story(self, group: int, index: int) -> None:
        """Where the group's images are at k-1, k and k+1 of the clustering (k: the one it started from)."""
        curation = self.curation
        centre = curation.started_from_k if curation.started_from_k in sweep.ks else sweep.recommended_k
        ks = [k for k in (centre - 1, centre, centre + 1) if k in sweep.ks]
        lines = []
        story = group_story(self.dense, index, [sweep.labels[sweep.row(k)] for k in ks])
        for k, parts in zip(ks, story, strict=True):
            main = parts[0]
            others = ", ".join(
                f"{render.text(self.group_names[g]) if g >= 0 else 'images in no group'} ({n:,})"
                for g, n in main.others
            )
            if main.of_group >= STORY_WHOLE:
                text = f"**k = {k}**: {main.of_group:.0%} of it is in cluster {main.cluster}"
                text += (
                    f", which is only {main.of_cluster:.0%} this group: it also holds {others}. "
                    "This k would merge them."
                    if main.of_cluster < STORY_ALONE and others
                    else ", which is this group alone (as it stands)."
                )
            else:
                spread = ", ".join(f"cluster {p.cluster} ({p.of_group:.0%})" for p in parts[:4] if p.of_group >= 0.01)
                text = f"**k = {k}**: spread over {spread}. This k would divide it."
            lines.append(text)
        st.markdown("\n\n".join(lines) if lines else "No neighbouring k was prepared.")

    def browse(self, group: int, rows: np.ndarray) -> None:
        """A page of the group's members as a table of thumbnails; ticked rows can be moved."""
        chunk = thumbnails.page_of(rows, BROWSE_PAGE, f"browse_page_{group}")
        table = {
            "image": cur.thumbnail_uris(data.image_set(pipeline).unpack(chunk)),
            "file": [names[r] for r in chunk],
        }
        event = st.dataframe(
            table,
            column_config={"image": st.column_config.ImageColumn("image", width="small")},
            on_select="rerun",
            selection_mode="multi-row",
            hide_index=True,
            row_height=64,
            key=f"browse_{group}_{chunk[0]}_{cur.version()}",  # each page its own ticks
        )
        ticked = chunk[np.asarray(event.selection.rows, np.int64)] if event and event.selection.rows else chunk[:0]
        if len(ticked):
            self.move_bar(ticked, f"browse_move_{group}")
        else:
            st.caption("Tick images (the left edge of a row) to move them.")

    def group_card(self, group: int, index: int | None) -> None:
        curation = self.curation
        rows = curation.members(group)
        is_named = index is not None
        title = shown(curation.names[group]) if is_named else curation.describe(group)
        details = f"{len(rows):,} images ({len(rows) / max(len(names), 1):.1%})"
        with st.container(border=True, key=f"group-{group}"):
            st.markdown(render.swatch_header(index if is_named else -1, title, details), unsafe_allow_html=True)
            if len(rows) == 0:
                st.caption("Empty: move images here, or merge it into another group.")
            else:
                left, right = st.columns([1, 4])
                left.image(render.density_image(cur.shape(pipeline, rows), 120), caption="typical shape")
                typical = data.image_set(pipeline).unpack(cur.typical_rows(pipeline, rows, CARD_THUMBS))
                right.image(render.montage(typical, columns=8, side=72), caption="most typical members")
            # one part at a time, drawn only when chosen (tabs would build every group's table on every run)
            choices = [RENAME, SPLIT, ACROSS_K, BROWSE] if is_named else [BROWSE]
            part = st.segmented_control("Do", choices, key=f"do_{group}", label_visibility="collapsed")
            if part == RENAME:
                key = f"name_{group}_{cur.version()}"
                st.text_input("Name", value=curation.names[group], key=key, max_chars=80)
                st.button("Rename", on_click=rename, args=(group, key), key=f"rename_{group}")
            elif part == SPLIT:
                key = f"parts_{group}"
                st.number_input("Parts", 2, SPLIT_MAX, 2, key=key, help="Its images are clustered again, on their own.")
                st.button("Preview the split", on_click=preview_split, args=(group, key), key=f"split_{group}")
                self.split_preview(group)
            elif part == ACROSS_K:
                self.story(group, index)
            elif part == BROWSE and len(rows):
                self.browse(group, rows)


def rows_named(text: str) -> tuple[np.ndarray, list[str]]:
    """Row ids of the images named one per line (paths as in the CSV exports, ./ allowed), and unknown names."""
    index = {path: row for row, path in enumerate(pipeline.image_meta()["paths"])}
    rows, unknown = [], []
    for line in text.splitlines():
        name = line.strip().strip('"')
        name = name[2:] if name.startswith("./") else name
        if name and name in index:
            rows.append(index[name])
        elif name:
            unknown.append(name)
    return np.unique(np.asarray(rows, np.int64)), unknown


def rename(group: int, key: str) -> None:
    cur.act(Curation.rename, group, st.session_state.get(key, ""))


def preview_split(group: int, key: str) -> None:
    """Cluster the group's members into parts of their own and keep them to show (nothing is changed yet)."""
    _, curation = st.session_state[cur.KEY]
    members = curation.members(group)
    s = pipeline.settings
    try:
        parts = split_parts(pipeline.space()[members], int(st.session_state[key]), s.algorithm, s.seed)
    except CurationError as exc:
        cur.say("error", str(exc))
        return
    st.session_state["split_preview"] = (group, cur.version(), parts)


def apply_split(group: int, parts: np.ndarray) -> None:
    st.session_state.pop("split_preview", None)
    cur.act(Curation.split, group, parts)


curation_view(pipeline)
