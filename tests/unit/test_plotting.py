"""Probe-sweep figures: each returns a plotly Figure with data of the right shapes and readable labels."""

from __future__ import annotations

from collections.abc import Iterator

import plotly.graph_objects as go
import pytest
import torch
from threadpoolctl import threadpool_limits

from sahs_lens.head_activations import HeadActivations
from sahs_lens.heads import HeadSet
from sahs_lens.plotting import accuracy_heatmap, mean_std_scatter, shots_curve, tsne_plot
from sahs_lens.probes import ProbeSweep

L, H, R = 3, 4, 5


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """t-SNE on 40 points gains nothing from threads; on a busy 2-core runner they only contend."""
    with threadpool_limits(1):
        yield


SHOTS = [2, 8, 4]  # deliberately unsorted


@pytest.fixture(scope="module")
def sweep() -> ProbeSweep:
    g = torch.Generator().manual_seed(0)
    accuracy = 0.5 + 0.5 * torch.rand(len(SHOTS), R, L, H, generator=g)
    return ProbeSweep(
        accuracy=accuracy, auroc=accuracy.clone(), f1=None, shots=SHOTS, shot_specs=["2", "8", "10%"],
        draws=[torch.zeros(R, 2 * n, dtype=torch.long) for n in SHOTS], seed=0, C=1.0, standardize=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def acts() -> HeadActivations:
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(40) % 2
    z = torch.randn(40, L, H, 6, generator=g)
    z[:, 1, 2, 0] += 3 * (2 * labels - 1)
    sources = ["bench-a" if i < 20 else "bench-b" for i in range(40)]
    return HeadActivations(z=z, labels=labels, sources=sources)


def test_accuracy_heatmap(sweep: ProbeSweep) -> None:
    fig = accuracy_heatmap(sweep, at_shots=8)
    assert isinstance(fig, go.Figure) and len(fig.data) == 1
    heat = fig.data[0]
    assert heat.z.shape == (L, H)
    torch.testing.assert_close(torch.as_tensor(heat.z), sweep.mean(at=8))
    assert heat.text[1][2].startswith("L1H2<br>mean ") and "std " in heat.text[1][2]
    assert "8 shots/class" in fig.layout.title.text and fig.layout.yaxis.title.text == "layer"
    assert "averaged over 2, 4, 8 shots/class" in accuracy_heatmap(sweep).layout.title.text
    assert "(10%)" in accuracy_heatmap(sweep, at_shots="10%", metric="auroc").layout.title.text


def test_shots_curve(sweep: ProbeSweep) -> None:
    heads = HeadSet.parse("L1H2,L0H0")
    fig = shots_curve(sweep, heads)
    assert isinstance(fig, go.Figure)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(lines) == 2 and len(fig.data) == 4  # a band and a line per group
    assert list(lines[0].x) == sorted(SHOTS)
    expected = sweep.mean()[[0, 2, 1]][:, [1, 0], [2, 0]].mean(1)
    torch.testing.assert_close(torch.as_tensor(lines[0].y, dtype=torch.float32), expected)
    assert fig.layout.xaxis.type == "log" and "per class" in fig.layout.xaxis.title.text
    default = shots_curve(sweep, k=3)
    assert "k=3" in default.data[1].name


def test_mean_std_scatter(sweep: ProbeSweep) -> None:
    heads = HeadSet.parse("L1H2,L0H0,L2H3")
    fig = mean_std_scatter(sweep, heads, at_shots=[2, 4])
    others, chosen = fig.data
    assert len(others.x) + len(chosen.x) == L * H and len(chosen.x) == 3
    assert set(chosen.text) == {"L1H2", "L0H0", "L2H3"}
    assert "std" in fig.layout.xaxis.title.text and "mean" in fig.layout.yaxis.title.text


def test_tsne_plot(acts: HeadActivations) -> None:
    heads = HeadSet.parse("L1H2,L0H1")
    fig = tsne_plot(acts, heads, perplexity=5)
    assert [t.name for t in fig.data] == ["malicious (n=20)", "benign (n=20)"]
    assert sum(len(t.x) for t in fig.data) == 40
    assert "12 dims" in fig.layout.title.text
    by_source = tsne_plot(acts, heads, color_by="source", perplexity=5)
    assert [t.name for t in by_source.data] == ["bench-a (n=20)", "bench-b (n=20)"]
    groups = ["benign text" if i % 2 else "harmful text" for i in range(40)]
    by_set = tsne_plot(acts, heads, perplexity=5, groups=groups)
    assert [t.name for t in by_set.data] == ["harmful text (n=20)", "benign text (n=20)"]
    assert "coloured by group" in by_set.layout.title.text


def test_tsne_rejects_bad_options(acts: HeadActivations) -> None:
    with pytest.raises(ValueError, match="color_by must be"):
        tsne_plot(acts, "L0H0", color_by="dataset")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="groups must name every sample"):
        tsne_plot(acts, "L0H0", perplexity=5, groups=["a"] * 39)
    with pytest.raises(ValueError, match="perplexity must lie between"):
        tsne_plot(acts, "L0H0", perplexity=40)
