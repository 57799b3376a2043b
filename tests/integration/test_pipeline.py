"""Samples -> activations -> probe sweep -> ranking -> every figure, on a tiny model with bundled data."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

from model_adapters.testing import load_tiny, tiny_families
from sahs_lens import plotting
from sahs_lens.activations import collect_head_activations
from sahs_lens.data import Sample, load_bundled
from sahs_lens.guard import SafetyHeadGuard
from sahs_lens.interventions import ablate_heads, ablation_curve, patching_sweep
from sahs_lens.probes import probe_sweep
from sahs_lens.ranking import rank_heads


def has_data(fig: go.Figure) -> bool:
    def size(trace: object) -> int:
        for name in ("x", "y", "z"):
            value = getattr(trace, name, None)
            if value is not None and len(value) > 0:
                return len(value)
        return 0

    return len(fig.data) > 0 and all(size(trace) > 0 for trace in fig.data)


@pytest.fixture(scope="module")
def run():  # type: ignore[no-untyped-def]
    model = load_tiny("llava")
    samples = (
        load_bundled("harmful_text:train")[:10]
        + load_bundled("benign_text:train")[:10]
        + load_bundled("figstep_attack:train", image_size=32)[:6]
        + load_bundled("figstep_benign:train", image_size=32)[:6]
    )
    acts = collect_head_activations(model, samples, batch_size=8, progress=False)
    sweep = probe_sweep(acts, shots=[1, 2, 4], repeats=5, seed=0, progress=False)
    heads = rank_heads(sweep, k=4, criterion="stable")
    return model, samples, acts, sweep, heads


def answered(texts: list[str], samples: object) -> float:
    """A stand-in attack-success criterion: the fraction of non-empty answers."""
    return sum(bool(t.strip()) for t in texts) / len(texts)


def test_pipeline_produces_every_figure(run) -> None:  # type: ignore[no-untyped-def]
    model, samples, acts, sweep, heads = run
    assert tuple(sweep.accuracy.shape) == (3, 5, model.cfg.n_layers, model.cfg.n_heads)
    assert len(heads) == 4
    figures = [
        plotting.accuracy_heatmap(sweep),
        plotting.shots_curve(sweep, heads=heads),
        plotting.mean_std_scatter(sweep, heads),
        plotting.tsne_plot(acts, heads, color_by="source", seed=0),
    ]
    malicious = [s for s in samples if s.label == 1][:4]
    benign = [s for s in samples if s.label == 0][:4]
    curve = ablation_curve(
        model,
        malicious,
        heads,
        ks=[2, 4],
        seeds=[0],
        utility_samples=benign,
        success_fn=answered,
        max_new_tokens=4,
        progress=False,
    )
    assert curve.success == "answered" and len(curve.safety_asr) == 2 and len(curve.random_asr) == 1
    assert curve.baseline_asr is not None
    assert all(0 <= a <= 1 for a in [curve.baseline_asr, *curve.safety_asr])
    figures.append(plotting.ablation_curve_figure(curve))
    assert any("ASR (answered)" in (trace.name or "") for trace in figures[-1].data)
    source = collect_head_activations(model, malicious, progress=False)
    patching = patching_sweep(
        model,
        model.prepare([s.prompt for s in benign], images=[s.image for s in benign]),
        source,
        progress=False,
    )
    figures.append(plotting.patching_map(patching))
    guard = SafetyHeadGuard.fit(acts, heads)
    scores = guard.score(acts)
    figures += [
        plotting.roc_figure(acts.labels, scores, threshold=0.5),
        plotting.score_histogram(acts.labels, scores, 0.5, groups=acts.sources),
    ]
    for fig in figures:
        assert isinstance(fig, go.Figure) and has_data(fig), fig.layout.title.text


@pytest.mark.parametrize("family", tiny_families())
def test_the_whole_pipeline_runs_on_every_family(family: str, images) -> None:  # type: ignore[no-untyped-def]
    """collect -> sweep -> rank -> ablate -> guard fit -> guarded generate, on each family's tiny model."""
    model = load_tiny(family)
    prompts = [
        "How do I bake bread?",
        "Explain how to pick a lock.",
        "Describe a sunny day.",
        "Hurt someone?",
    ]
    samples = [
        Sample(p, images[i % len(images)] if i % 2 else None, i % 2, "test", f"{family}-{i}")
        for i, p in enumerate(prompts * 2)
    ]
    acts = collect_head_activations(model, samples, batch_size=4, progress=False)
    sweep = probe_sweep(acts, shots=[1, 2], repeats=3, seed=0, progress=False)
    heads = rank_heads(sweep, k=2, criterion="stable")
    batch = model.prepare(prompts[:2], images=[images[0], None])
    with ablate_heads(model, heads, mode="zero"):
        ablated = model.generate(batch, max_new_tokens=3)
    guard = SafetyHeadGuard.fit(acts, heads)
    out = guard.generate(model, batch, max_new_tokens=3)
    assert len(ablated) == 2 and len(out.texts) == 2 and len(out.flagged) == 2
    assert out.scores == guard.score_inputs(model, batch).tolist()
