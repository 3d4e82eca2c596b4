"""A curation: the user's named groups of the images of one folder, changed step by step, each step undoable.

It starts from the clusters of one k and is then the user's: groups are named, merged, split,
images moved between them or marked as outliers. Saving and reading the file is core.curation.file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.clustering import algorithms as clustering
from core.errors import DotmapError
from core.reading.names import NAME_MAX_BYTES, cut_to_bytes, name_too_long

UNASSIGNED = -1  # an image in no group yet (added to the folder later, or moved out of a group)
OUTLIER = -2  # an image the user marked as belonging to no group
NAME_LIMIT = 80  # characters in a group name
RESERVED_NAMES = ("unassigned", "outlier", "outliers")  # what the exports write for images in no group
HISTORY_LIMIT = 100  # steps that can be undone; older ones are forgotten
HISTORY_ROWS = 200_000  # images moved by the steps kept for undo, in all (bounds the file's size)
SPLIT_MAX = 12  # parts a group can be split into at once
ID_LIMIT = 2**31  # group ids are 0..ID_LIMIT-1: a file with a larger one is refused, new ids stay below


class CurationError(DotmapError):
    """A curation change that cannot be made, or a curation file that cannot be used; said in words."""


@dataclass
class Change:
    """One step, as what is needed to undo it: the names before it, and the rows it moved with their old groups."""

    what: str
    names: dict[int, str]
    rows: np.ndarray  # (m,) row ids into Curation.paths
    was: np.ndarray  # (m,) their group ids before the step

    def to_dict(self, paths: Sequence[str]) -> dict[str, Any]:
        return {
            "what": self.what,
            "groups": [{"id": g, "name": n} for g, n in self.names.items()],
            "moved": [[paths[r], int(w)] for r, w in zip(self.rows.tolist(), self.was.tolist(), strict=True)],
        }


@dataclass
class Curation:
    """Named groups of the images of one folder.

    paths : the images of the folder, in the prepared set's order (row ids index them).
    labels : ndarray of shape (n_images,), int64: a group id, UNASSIGNED or OUTLIER.
    names : group id -> name, in the order groups are listed. Ids are never reused.
    history : the steps that can be undone, oldest first.
    folder, settings, started_from_k : what the curation belongs to (written in the file).
    added, removed : images of the folder the file did not know (now unassigned), and images of the
        file no longer in the folder (dropped); set when a file is read.
    notes : what reading the file noticed and repaired, in words.
    stamp : (size, mtime_ns) of the file as last read or written: a file changed by hand since is not
        overwritten (core.curation.file.save).
    """

    paths: list[str]
    labels: np.ndarray
    names: dict[int, str]
    folder: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    started_from_k: int | None = None
    history: list[Change] = field(default_factory=list)
    added: int = 0
    removed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stamp: tuple[int, int] | None = None

    # ---- reading -------------------------------------------------------------------------
    @property
    def groups(self) -> list[int]:
        return list(self.names)

    def members(self, group: int) -> np.ndarray:
        """Row ids of a group (or of UNASSIGNED / OUTLIER), ascending."""
        return np.flatnonzero(self.labels == group)

    def sizes(self) -> dict[int, int]:
        """Images per group, in the listed order (empty groups included)."""
        counts = dict(zip(*np.unique(self.labels[self.labels >= 0], return_counts=True), strict=True))
        return {g: int(counts.get(g, 0)) for g in self.names}

    def dense(self) -> tuple[np.ndarray, list[str]]:
        """Group indices 0..g-1 in the listed order (-1 for an image in no group), and the names.

        The form classifiers and exports take: (n_images,) int64 and g names. Its memory follows the
        images and the groups, never the largest id (ids are sparse: they are never reused).
        """
        names = list(self.names.values())
        if not names:
            return np.full(len(self.labels), -1, np.int64), names
        ids = np.fromiter(self.names, np.int64, len(names))
        order = np.argsort(ids)  # listed index of the i-th smallest id
        at = np.searchsorted(ids[order], self.labels).clip(0, len(ids) - 1)
        found = ids[order][at] == self.labels  # OUTLIER, UNASSIGNED and a group gone: not found
        return np.where(found, order[at], -1).astype(np.int64), names

    def group_of_name(self, name: str) -> int:
        for group, existing in self.names.items():
            if existing == name:
                return group
        raise CurationError(f"There is no group named {name!r}.")

    def describe(self, group: int) -> str:
        if group == OUTLIER:
            return "outliers"
        if group == UNASSIGNED:
            return "unassigned"
        return repr(self.names[group])

    # ---- changes -------------------------------------------------------------------------
    def _check_group(self, group: int) -> None:
        if group not in self.names:
            raise CurationError(f"There is no group {group}; the groups are {sorted(self.names)}.")

    def _check_name(self, name: str, renaming: int | None = None) -> str:
        name = " ".join(str(name).split())  # one line, no leading or trailing space, no tab or newline
        if not name:
            raise CurationError("A group needs a name: type at least one letter or digit.")
        if len(name) > NAME_LIMIT:
            raise CurationError(f"A group name has at most {NAME_LIMIT} characters; this one has {len(name)}.")
        if not name.isprintable():
            raise CurationError("A group name cannot hold control characters.")
        too_long = name_too_long(name)  # an export makes a folder of it: 80 emoji are 320 bytes
        if too_long is not None:
            raise CurationError(too_long)
        if name.casefold() in RESERVED_NAMES:
            raise CurationError(f"{name!r} is what the exports call images in no group; choose another name.")
        for group, existing in self.names.items():
            if group != renaming and existing.casefold() == name.casefold():
                raise CurationError(f"There is already a group named {existing!r}; names must differ.")
        return name

    def _record(self, what: str, rows: np.ndarray) -> None:
        rows = np.asarray(rows, np.int64)
        self.history.append(Change(what, dict(self.names), rows, self.labels[rows].copy()))
        del self.history[:-HISTORY_LIMIT]
        while len(self.history) > 1 and sum(len(c.rows) for c in self.history) > HISTORY_ROWS:
            del self.history[0]

    def _rows(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        rows = np.unique(np.asarray(rows, np.int64))
        if len(rows) and (rows[0] < 0 or rows[-1] >= len(self.paths)):
            raise CurationError(f"Row ids must be 0..{len(self.paths) - 1}; got {rows[0]}..{rows[-1]}.")
        return rows

    def _new_id(self) -> int:
        """An id never used by the groups or the steps kept for undo (so an undo cannot bring back another group)."""
        used = self._ids_ever_used()
        if max(used) + 1 < ID_LIMIT:
            return max(used) + 1
        return min(set(range(len(used) + 1)) - used)  # the ids above were used up (a hand-edited file): the lowest free

    def _ids_ever_used(self) -> set[int]:
        used = set(self.names) | {-1}
        for change in self.history:
            used |= set(change.names)
        return used

    def rename(self, group: int, name: str) -> str:
        """Give a group a new name (unique, one line, at most NAME_LIMIT characters)."""
        self._check_group(group)
        name = self._check_name(name, renaming=group)
        what = f"renamed {self.names[group]!r} to {name!r}"
        self._record(what, np.zeros(0, np.int64))
        self.names[group] = name
        return what

    def merge(self, groups: Sequence[int]) -> str:
        """Put the members of every group into the first one; the others are gone (undo brings them back)."""
        groups = list(dict.fromkeys(int(g) for g in groups))
        if len(groups) < 2:
            raise CurationError("Choose at least two groups to merge.")
        for group in groups:
            self._check_group(group)
        into, others = groups[0], groups[1:]
        rows = np.flatnonzero(np.isin(self.labels, others))
        what = f"merged {', '.join(repr(self.names[g]) for g in others)} into {self.names[into]!r}"
        self._record(what, rows)
        self.labels[rows] = into
        for group in others:
            del self.names[group]
        return what

    def move(self, rows: Sequence[int] | np.ndarray, group: int) -> str:
        """Move images to a group, or to OUTLIER / UNASSIGNED."""
        if group not in (OUTLIER, UNASSIGNED):
            self._check_group(group)
        rows = self._rows(rows)
        if len(rows) == 0:
            raise CurationError("No images are selected: select some on the map or tick them first.")
        what = f"moved {len(rows):,} image{'s' * (len(rows) != 1)} to {self.describe(group)}"
        self._record(what, rows)
        self.labels[rows] = group
        return what

    def new_group(self, name: str, rows: Sequence[int] | np.ndarray = ()) -> int:
        """A new group of that name, with the given images moved into it; returns its id."""
        name = self._check_name(name)
        rows = self._rows(rows)
        group = self._new_id()
        self._record(f"made the group {name!r} of {len(rows):,} images", rows)
        self.names[group] = name
        self.labels[rows] = group
        return group

    def split(self, group: int, parts: np.ndarray) -> list[int]:
        """Split a group by ``parts`` (one part index 0..p-1 per member, ascending rows as :meth:`members`).

        Part 0 keeps the group's id and name; the others become new groups named "<name> · 2", ...
        Returns the ids of the parts.
        """
        self._check_group(group)
        members = self.members(group)
        parts = np.asarray(parts, np.int64)
        if parts.shape != members.shape:
            raise CurationError(f"The split gives {len(parts)} parts for {len(members)} members; preview it again.")
        count = int(parts.max()) + 1 if len(parts) else 0
        if count < 2:
            raise CurationError("A split needs at least two parts.")
        base = self.names[group]
        ids = [group]
        self._record(f"split {base!r} into {count} groups", members)
        for part in range(1, count):
            name = self._unique_name(f"{base} · {part + 1}")
            new = self._new_id()
            self.names[new] = name
            ids.append(new)
        self.labels[members] = np.asarray(ids)[parts]
        return ids

    def _unique_name(self, name: str) -> str:
        taken = {n.casefold() for n in self.names.values()}
        name = cut_to_bytes(name, NAME_MAX_BYTES - 8)  # room for " (n)" within what a folder name may hold
        candidate, n = name[:NAME_LIMIT], 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{name[: NAME_LIMIT - 4]} ({n})"
        return candidate

    def undo(self) -> str:
        """Undo the last step; returns what it was. Raises CurationError when there is nothing to undo."""
        if not self.history:
            raise CurationError("There is nothing to undo.")
        change = self.history.pop()
        self.labels[change.rows] = change.was
        self.names = dict(change.names)
        return change.what


def from_clusters(paths: Sequence[str], labels: np.ndarray, k: int, **about: Any) -> Curation:
    """A new curation whose groups are the clusters 0..k-1 of one k, named "cluster 0", "cluster 1", ..."""
    labels = np.asarray(labels, np.int64).copy()
    if labels.shape != (len(paths),):
        raise ValueError(f"labels has shape {labels.shape}; expected ({len(paths)},).")
    names = {c: f"cluster {c}" for c in range(k)}
    return Curation(list(paths), labels, names, started_from_k=k, **about)


def split_parts(points: np.ndarray, k: int, algorithm: str = "kmeans", seed: int = 0) -> np.ndarray:
    """The members of a group (their rows of the cluster space, (m, d)) clustered into k parts of their own.

    Returns parts (m,), 0 the largest part. Deterministic for a seed.
    """
    if not 2 <= k <= SPLIT_MAX:
        raise CurationError(f"A group is split into 2..{SPLIT_MAX} parts; {k} was asked.")
    distinct = len(np.unique(points, axis=0))
    if distinct < k:
        raise CurationError(f"This group holds {distinct} distinct images, too few for {k} parts.")
    fit = clustering.order_by_size(clustering.fit_clusters(points, k, algorithm, seed))
    return fit.labels.astype(np.int64)


@dataclass
class StoryPart:
    """One cluster of a k that holds members of a group: how many, and what else it holds."""

    cluster: int
    members: int  # of the group's images in this cluster
    of_group: float  # members / the group's size
    of_cluster: float  # members / the cluster's size
    others: list[tuple[int, int]]  # (other group index, its images in this cluster), most first; -1 = in no group


def group_story(
    groups: np.ndarray, group: int, labels_by_k: Sequence[np.ndarray], top: int = 3
) -> list[list[StoryPart]]:
    """Where the members of one group are in the clustering of each k, and whom they share clusters with.

    groups : (n,) group index of every image, -1 for none; labels_by_k : one (n,) clustering per k.
    Returns, per k, the clusters holding members of ``group``, most members first: a group held by
    one cluster that also holds another group is what that k would merge; a group spread over two
    clusters is what it would split.
    """
    groups = np.asarray(groups, np.int64)
    inside = groups == group
    size = int(inside.sum())
    story = []
    for labels in labels_by_k:
        labels = np.asarray(labels, np.int64)
        k = int(labels.max()) + 1 if labels.size else 0
        counts = np.bincount(labels[inside], minlength=k)
        totals = np.bincount(labels, minlength=k)
        parts = []
        for cluster in np.argsort(-counts, kind="stable"):
            if counts[cluster] == 0:
                break
            in_cluster = (labels == cluster) & ~inside
            ids, n = np.unique(groups[in_cluster], return_counts=True)
            order = np.argsort(-n, kind="stable")[:top]
            parts.append(
                StoryPart(
                    int(cluster),
                    int(counts[cluster]),
                    float(counts[cluster] / max(size, 1)),
                    float(counts[cluster] / totals[cluster]),
                    [(int(ids[i]), int(n[i])) for i in order],
                )
            )
        story.append(parts)
    return story


def most_typical(points: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` members closest to the mean of the group's points (cluster space, (n, d)), closest first."""
    rows = np.asarray(rows, np.int64)
    if len(rows) == 0:
        return rows
    member_points = points[rows]
    distance = np.linalg.norm(member_points - member_points.mean(axis=0), axis=1)
    return rows[np.argsort(distance, kind="stable")[:count]]
