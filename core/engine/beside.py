"""The UMAP stages a prepare makes in processes beside its own: which, when each begins, and waiting for them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from core.engine import processes
from core.engine.stages import STAGES
from core.representation.embedding import SETUP_WORDS

# each made in a process beside the prepare's from SPREAD_FROM_IMAGES images (docs/speed.md has the runs), its
# work begun once its inputs are there and the stage named here is done. The cluster space's process starts
# with the prepare and imports umap-learn (on a fresh machine it also compiles it: 10-40 s) while the images
# are read; the map's starts when its work may begin, and is waited for last. Dense 32,000 images: the map
# begun beside the cluster space (at nice 19 or not) or started early to import umap-learn took a core from
# the stages the first clustering waits for.
BESIDE_STAGES = {"space": None, "map": "typical"}
STARTED_EARLY = ("space",)
WAITED_FOR_LAST = ("map",)
# the line a stage started early shows from the moment it is waited for: it may still be compiling UMAP, and
# says nothing until its work begins (the same line as the stage's own first: stages.cluster_space)
WAITING_WORDS = {"space": f"cluster space (UMAP): {SETUP_WORDS}"}


class StagesBeside:
    """The processes beside one prepare of ``pipeline`` (a core.engine.pipeline.Pipeline; the stages in
    ``planned``), by stage. Each runs ``run_stage(stage, data_dir, settings, cache_dir, inventory,
    image_shape, on_progress=...)``, a module's function (the process imports it)."""

    def __init__(self, pipeline: Any, planned: set[str], run_stage: Callable[..., None]) -> None:
        self.pipeline = pipeline
        self.planned = planned
        self.run_stage = run_stage
        self.running: dict[str, processes.Beside] = {}
        self.announced: set[str] = set()  # stages whose beginning the prepare's on_step was told
        self.begin_ready()

    def __contains__(self, stage: str) -> bool:
        return stage in self.running

    def waited_for_last(self, stage: str) -> bool:
        return stage in self.running and stage in WAITED_FOR_LAST

    def begin_ready(self) -> list[str]:
        """The stages whose inputs and BESIDE_STAGES' stage are now there begin: a process started
        early is let go, another starts, as does a process of STARTED_EARLY not started yet.
        Returns the stages whose work began now."""
        p, begun = self.pipeline, []
        for name, after in BESIDE_STAGES.items():
            ready = all(p.is_cached(up) for up in STAGES[name].inputs) and (after is None or p.is_cached(after))
            if name not in self.running and self._goes_beside(name) and (ready or name in STARTED_EARLY):
                self.running[name] = self._start(name)
                if ready and name not in STARTED_EARLY:
                    begun.append(name)
            if name in self.running and ready and not self.running[name].going:
                self.running[name].go()
                begun.append(name)
        return begun

    def finish(self, stage: str) -> None:
        """Wait for a stage made beside (handing on its progress) and load it; if it failed, say so
        and make it here, where its error, if it has one, is raised as any stage's is."""
        p, beside = self.pipeline, self.running.pop(stage)
        if stage in WAITING_WORDS:
            p.progress(0, 0, WAITING_WORDS[stage])
        problem = beside.wait(p.progress)
        seconds = time.perf_counter() - beside.started
        if problem is not None:
            p.cache.notes.append(
                f"the {stage} stage, made in a process beside this one, failed ({problem}); made it here instead"
            )
            p.entry(stage)
            return
        p.entry(stage)
        record = p.records[-1]
        if record.stage == stage and not record.computed:  # computed, beside: its wall time since it began
            p.records[-1] = dataclasses.replace(record, seconds=seconds, computed=True)

    def close(self) -> None:
        """End every process still running (the prepare stopped: their work is not wanted)."""
        for beside in self.running.values():
            beside.close()
        self.running.clear()

    def _goes_beside(self, stage: str) -> bool:
        """Whether ``stage`` is made beside: it is planned and not cached, the work runs here, the
        machine has more than one core, and there are SPREAD_FROM_IMAGES images."""
        p = self.pipeline
        return (
            stage in self.planned
            and p.backend.name == "local"
            and len(p.inventory.files) >= processes.SPREAD_FROM_IMAGES
            and processes.cores() >= 2
            and not processes.current_process().daemon  # a daemonic process has no children
            and not p.is_cached(stage)
        )

    def _start(self, stage: str) -> processes.Beside:
        from core.representation import embedding

        p = self.pipeline
        return processes.Beside(
            self.run_stage,
            stage,
            p.data_dir,
            p.settings,
            p.cache.root,
            p.inventory,
            p.image_shape,
            warm_up=embedding.warm_up if stage in STARTED_EARLY else None,
        )
