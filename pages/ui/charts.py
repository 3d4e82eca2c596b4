"""Charts: explained variance (Overview); score curves, silhouette plot and splits between two k (Choose k);
agreement of two settings (Compare)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.engine.pipeline import Sweep
from core.outputs.truth import Truth
from pages.ui.render import colour

SILHOUETTE_POINTS = 300  # a cluster's band is drawn from at most this many quantiles
SPLIT_SHARE = 0.10  # a part of a cluster counts in a split when it holds this share of it
SPLIT_THUMBS = 9
CURVES = (  # (table key, title, which way is better)
    ("silhouette", "Silhouette", "higher is better"),
    ("davies_bouldin", "Davies-Bouldin", "lower is better"),
    ("calinski_harabasz", "Calinski-Harabasz", "higher is better"),
    ("inertia", "Inertia (elbow)", "look for the bend"),
    ("stability", "Stability", "higher is better"),
)


def score_curves(sweep: Sweep, truth: Truth | None, chosen: int | None) -> go.Figure:
    """One small chart per score against k, the recommended k marked on each."""
    panels = [(key, f"{title} ({hint})", [row[key] for row in sweep.table]) for key, title, hint in CURVES]
    if truth:
        panels.append(("truth", "Agreement with labels.csv", None))
    cols = 3
    rows = -(-len(panels) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[title for _, title, _ in panels], vertical_spacing=0.16)
    for i, (key, _, values) in enumerate(panels):
        r, c = divmod(i, cols)
        if key == "truth":
            for name, series, dash in (("ARI", truth.ari, "solid"), ("NMI", truth.nmi, "dot")):
                fig.add_scatter(
                    x=sweep.ks, y=series, name=name, mode="lines+markers", line_dash=dash, row=r + 1, col=c + 1
                )
        else:
            fig.add_scatter(
                x=sweep.ks, y=values, mode="lines+markers", showlegend=False, line_color="#1f77b4", row=r + 1, col=c + 1
            )
        fig.add_vline(x=sweep.recommended_k, line_dash="dash", line_color="#2ca02c", row=r + 1, col=c + 1)
        if chosen is not None and chosen != sweep.recommended_k:
            fig.add_vline(x=chosen, line_dash="dot", line_color="#d62728", row=r + 1, col=c + 1)
    if truth:
        fig.update_yaxes(range=[0, 1.05], row=rows, col=(len(panels) - 1) % cols + 1)
    fig.update_xaxes(dtick=1 if len(sweep.ks) <= 12 else 2)
    fig.update_layout(
        height=260 * rows,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.08},
    )
    return fig


def silhouette_plot(silhouette: np.ndarray, labels: np.ndarray, k: int) -> go.Figure:
    """Per-cluster bands of sorted silhouettes (each band drawn from quantiles, so 32k images stay light)."""
    fig = go.Figure()
    y0 = 0.0
    n = len(labels)
    gap = max(n * 0.01, 2)
    ticks, ticktext = [], []
    for c in range(k):
        values = np.sort(silhouette[labels == c])[::-1]
        if len(values) == 0:
            continue
        if len(values) > SILHOUETTE_POINTS:
            values = np.quantile(values, np.linspace(1, 0, SILHOUETTE_POINTS))
            span = np.linspace(0, (labels == c).sum(), SILHOUETTE_POINTS)
        else:
            span = np.arange(len(values), dtype=float)
        fig.add_scatter(
            x=np.concatenate([[0], values, [0]]),
            y=y0 + np.concatenate([[span[0]], span, [span[-1]]]),
            fill="toself",
            mode="lines",
            line={"width": 0.5, "color": colour(c)},
            fillcolor=colour(c),
            name=f"cluster {c}",
            hovertemplate=f"cluster {c}: {(labels == c).sum()} images<extra></extra>",
        )
        ticks.append(y0 + span[-1] / 2)
        ticktext.append(str(c))
        y0 += span[-1] + gap
    mean = float(silhouette.mean()) if n else 0.0
    fig.add_vline(x=mean, line_dash="dash", annotation_text=f"mean {mean:.2f}")
    fig.update_layout(
        height=max(320, 24 * k + 120),
        showlegend=False,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"title": "silhouette", "range": [min(-0.2, float(silhouette.min()) if n else 0), 1]},
        yaxis={"title": "cluster", "tickvals": ticks, "ticktext": ticktext, "autorange": "reversed"},
    )
    return fig


def splits(overlap: np.ndarray, share: float = SPLIT_SHARE) -> list[tuple[int, list[int]]]:
    """Clusters (rows) whose members go to two or more columns with at least ``share`` of them each."""
    found = []
    for source, row in enumerate(overlap):
        total = row.sum()
        if total == 0:
            continue
        parts = [int(t) for t in np.argsort(row)[::-1] if row[t] >= share * total]
        if len(parts) >= 2:
            found.append((source, parts))
    return found


def sankey(
    overlap: np.ndarray, sides: tuple[str, str] | None = None, right_colours: np.ndarray | None = None
) -> go.Figure:
    """Clusters at k1 (left) flowing into clusters at k2 (right); bands of under 1% are left out.

    ``sides`` names the two sides in the node labels (default ``k=k1``, ``k=k2``); ``right_colours``
    gives each right node the colour of that cluster id (default: its own id).
    """
    k1, k2 = overlap.shape
    left, right = sides or (f"k={k1}", f"k={k2}")
    right_colours = np.arange(k2) if right_colours is None else right_colours
    sources, targets, values, link_colours = [], [], [], []
    for i in range(k1):
        for j in range(k2):
            if overlap[i, j] and overlap[i, j] >= 0.01 * overlap[i].sum():
                sources.append(i)
                targets.append(k1 + j)
                values.append(int(overlap[i, j]))
                link_colours.append(_fade(colour(i)))
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={
                "label": [f"{i} ({left})" for i in range(k1)] + [f"{j} ({right})" for j in range(k2)],
                "color": [colour(i) for i in range(k1)] + [colour(int(c)) for c in right_colours],
                "pad": 8,
            },
            link={"source": sources, "target": targets, "value": values, "color": link_colours},
        )
    )
    fig.update_layout(height=max(360, 22 * max(k1, k2)), margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def _fade(hex_colour: str, alpha: float = 0.35) -> str:
    h = hex_colour.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def explained_variance(ratio: np.ndarray) -> go.Figure:
    """Bars of each component's share of the variance and the cumulative line."""
    n = np.arange(1, len(ratio) + 1)
    fig = go.Figure()
    fig.add_bar(x=n, y=ratio, name="per component", marker_color="#9ecae1")
    fig.add_scatter(x=n, y=np.cumsum(ratio), name="cumulative", mode="lines+markers", marker_size=4)
    fig.update_layout(
        height=280, margin={"l": 10, "r": 10, "t": 30, "b": 10}, yaxis_tickformat=".0%",
        xaxis_title="component", legend={"orientation": "h", "y": 1.12}, title="Explained variance of the features",
    )  # fmt: skip
    return fig


def agreement_curves(
    ks: list[int], ari: list[float], nmi: list[float], chosen: int, marks: dict[int, str]
) -> go.Figure:
    """ARI and NMI of two results against k; the ``chosen`` k shaded, ``marks`` (k -> words) as lines."""
    fig = go.Figure()
    fig.add_scatter(x=ks, y=ari, name="ARI", mode="lines+markers")
    fig.add_scatter(x=ks, y=nmi, name="NMI", mode="lines+markers", line_dash="dot")
    fig.add_vrect(x0=chosen - 0.5, x1=chosen + 0.5, fillcolor="#d62728", opacity=0.08, line_width=0)
    for k, words in marks.items():
        if ks[0] <= k <= ks[-1]:
            fig.add_vline(
                x=k, line_dash="dash", line_color="#2ca02c", annotation_text=words, annotation_position="bottom right"
            )
    fig.update_layout(
        height=320,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"title": "k", "dtick": 1 if len(ks) <= 12 else 2, "range": [ks[0] - 0.5, ks[-1] + 0.5]},
        yaxis={"title": "agreement of A and B", "range": [min(0.0, *ari) - 0.02, 1.05]},
        legend={"orientation": "h", "y": 1.15},
    )
    return fig
