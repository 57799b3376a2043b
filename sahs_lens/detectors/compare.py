"""Detectors side by side: train every detector on one set, score every test set, in one harness.

The claims of a detector paper are comparative (better than a probe on the residual stream, than the
model's own logits, than words alone) and about *transfer* (it still works on attacks it was not trained
on). ``compare`` measures them on equal terms:

1. Every detector reads the same prefill forward (``signals.collect_signals``), collected once per unique
   sample (same id, prompt and image) for every set it appears in.
2. Each training set is split once (seeded, per class) into a fitting part and a calibration part; every
   detector is fitted on the first, and its threshold is set on the second (at most ``target_fpr`` of its
   benign prompts flagged, the rule of ``evaluation.roc.tpr_at_fpr``), so ``fpr_at_threshold`` on a test
   set shows how well a threshold chosen in advance carries over.
3. Every (training set, test set) pair gets AUROC with a stratified bootstrap 95% interval (seeded), TPR at
   1% and 5% FPR, the rates at the calibrated threshold, the extra forward passes and the measured ms per
   prompt (``results``). A pair is *transfer* when the test set's malicious prompts come from a source or a
   modality (text, text with an image) the training set's malicious prompts do not include.

Train and test sets that share a sample, by id or by content (prompt and image hashes), are refused (naming
the shared samples) unless ``allow_overlap``.

>>> result = compare(model, {"typed": train}, {"typed": test, "typographic": figstep}, k=8, seed=0)  # doctest: +SKIP
>>> result.auroc("sahs", "typed", "typographic"), result.auroc("text_only", "typed", "typographic")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sahs_lens.activations import sample_content
from sahs_lens.detectors.base import DETECTORS, check_detector_names, make_detector
from sahs_lens.detectors.results import Comparison, mean_over_draws, score_metrics
from sahs_lens.detectors.signals import REFUSAL_WORDS, Signals, collect_signals
from sahs_lens.evaluation.roc import tpr_at_fpr

__all__ = ["DEFAULT_DETECTORS", "compare", "is_transfer"]

DEFAULT_DETECTORS = (
    "sahs", "sahs_mean", "random_heads", "all_heads", "residual_probe", "first_token_logits",
    "hidden_detect", "refusal_direction", "text_only", "model_refusal",
)  # fmt: skip
"""Every detector, in the order tables list them."""

SampleSets = Mapping[str, Sequence[Any]]


def _kind(sample: Any) -> tuple[str, str]:
    return (str(sample.source), "text" if sample.image is None else "image")


def is_transfer(train: Sequence[Any], test: Sequence[Any]) -> bool:
    """Whether ``test`` has malicious prompts of a (source, modality) that ``train`` 's malicious ones lack."""
    seen = {_kind(s) for s in train if s.label == 1}
    return any(_kind(s) not in seen for s in test if s.label == 1)


def _as_sets(sets: SampleSets | Sequence[Any], what: str) -> dict[str, list[Any]]:
    if not isinstance(sets, Mapping):
        sets = {what: sets}
    out = {str(name): list(samples) for name, samples in sets.items()}
    if not out:
        raise ValueError(f"no {what} set given; pass at least one (name -> samples)")
    for name, samples in out.items():
        if not samples:
            raise ValueError(f"the {what} set {name!r} is empty")
        ids = [str(s.id) for s in samples]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(
                f"the {what} set {name!r} holds sample id {dup!r} more than once; ids must be unique"
            )
    return out


def _check_overlap(
    trains: dict[str, list[Any]], tests: dict[str, list[Any]], pairs: dict[str, list[str]]
) -> None:
    """Refuse a pair whose training and test sets share a sample, by id or by content (the same prompt and
    image under another id: two copies of one file)."""
    test_keys = {name: _content_keys(samples) for name, samples in tests.items()}
    for train_name, test_names in pairs.items():
        train_ids = {str(s.id) for s in trains[train_name]}
        train_keys = dict(zip(_content_keys(trains[train_name]), trains[train_name], strict=True))
        for test_name in test_names:
            shared = sorted(train_ids & {str(s.id) for s in tests[test_name]})
            how = ""
            if not shared:
                same = [
                    (train_keys[k], s)
                    for k, s in zip(test_keys[test_name], tests[test_name], strict=True)
                    if k in train_keys
                ]
                shared = [f"{t.id} = {s.id}" for t, s in same]
                how = " with the same prompt and image"
            if shared:
                shown = ", ".join(shared[:10]) + (f" and {len(shared) - 10} more" if len(shared) > 10 else "")
                raise ValueError(
                    f"the training set {train_name!r} and the test set {test_name!r} share {len(shared)} sample(s)"
                    f"{how} ({shown}): a detector tested on what it was trained on looks better than it is. Remove "
                    "them from one side, or pass allow_overlap=True (--allow-overlap) to measure anyway"
                )


def _check_labels(sets: dict[str, list[Any]]) -> None:
    """Every label is 0 (benign) or 1 (malicious): a 0.5 would silently count as benign."""
    for where, samples in sets.items():
        for sample in samples:
            label = sample.label
            if isinstance(label, str) or label not in (0, 1):
                raise ValueError(
                    f"sample {sample.id!r} of the {where} has label {label!r}; labels must be 0 (benign) or 1 "
                    "(malicious)"
                )


def _content_keys(samples: list[Any]) -> list[tuple[str, str | None]]:
    content = sample_content(samples)
    return list(zip(content["prompt_sha256"], content["image_sha256"], strict=True))


def _calibration_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(fit, calibration) indices: ``fraction`` of each class to calibration, at least one of each kept."""
    rng = np.random.default_rng(seed)
    fit: list[int] = []
    calib: list[int] = []
    for label in (0, 1):
        idx = np.flatnonzero(labels == label)
        n_calib = int(round(fraction * idx.size))
        n_calib = min(max(n_calib, 1), idx.size - 1)
        order = rng.permutation(idx)
        calib.extend(order[:n_calib].tolist())
        fit.extend(order[n_calib:].tolist())
    return sorted(fit), sorted(calib)


def _key(digest: dict[str, list[Any]], i: int, sample: Any) -> tuple[str, str, str]:
    return (str(sample.id), digest["prompt_sha256"][i], str(digest["image_sha256"][i]))


def _needs(detectors: Sequence[str]) -> tuple[set[str], set[str]]:
    test_needs = set().union(*(DETECTORS[d].needs for d in detectors)) - {"text"}
    train_needs = set().union(*(DETECTORS[d].needs_for_training() for d in detectors)) - {"text"}
    return train_needs, test_needs


def compare(
    model: Any,
    train: SampleSets | Sequence[Any],
    tests: SampleSets | Sequence[Any],
    *,
    detectors: Sequence[str] | str = DEFAULT_DETECTORS,
    k: int = 8,
    seed: int = 0,
    pairs: Mapping[str, Sequence[str]] | None = None,
    allow_overlap: bool = False,
    calibration_fraction: float = 0.25,
    target_fpr: float = 0.05,
    bootstrap: int = 500,
    batch_size: int = 16,
    max_new_tokens: int = 24,
    shots: Sequence[int] = (1, 2, 4, 8, 16, 32),
    repeats: int = 10,
    draws: int = 5,
    refusal_words: Sequence[str] = REFUSAL_WORDS,
    signals: Signals | None = None,
    progress: bool = False,
    say: Callable[..., Any] | None = None,
) -> Comparison:
    """Train every detector on each training set and score each of its test sets.

    Args:
        model: the ``HookedVLM`` (``None`` is allowed when only ``text_only`` runs).
        train: samples, or ``{name: samples}`` for several training sets (e.g. leave one source out).
        tests: samples, or ``{name: samples}``.
        detectors: names among ``DETECTORS`` (a list or "a,b,c"); default every detector.
        k: heads of the head detectors (``sahs``, ``sahs_mean``, ``random_heads``).
        seed: seed of the calibration split, the probe sweep, the random heads and the bootstrap.
        pairs: ``{train name: [test names]}`` to measure (default: every test set for every training set).
        allow_overlap: measure even when a training and a test set share sample ids.
        calibration_fraction: share of each training class that sets the thresholds instead of fitting.
        target_fpr: the false-positive rate each threshold is set for on the calibration part.
        bootstrap: bootstrap replicates of the AUROC interval (0: no interval).
        batch_size, max_new_tokens: forward batch size; answer length of ``model_refusal``.
        shots, repeats: the probe sweep that ranks heads for ``sahs`` / ``sahs_mean``.
        draws: random head sets of ``random_heads``.
        refusal_words: the refusal vector of ``hidden_detect``.
        signals: signals already collected (``collect_signals``) for every sample of the measured sets, e.g.
            by the demo's one collection pass; rows are matched by sample id, prompt and image, and no
            prefill forward is run again (``answers`` for ``model_refusal`` are still generated here).
        progress: progress bars. say: a ``print``-like function for stage lines (default: silent).

    Returns:
        a ``Comparison`` (``results`` rows, ``row``, ``auroc``, ``ranking``, ``table``, ``save``).
    """
    started = time.perf_counter()
    names = check_detector_names(detectors)
    _check_settings(
        target_fpr=target_fpr, calibration_fraction=calibration_fraction, k=k, bootstrap=bootstrap,
        batch_size=batch_size, max_new_tokens=max_new_tokens, repeats=repeats, draws=draws,
    )  # fmt: skip
    trains, test_sets = _as_sets(train, "training"), _as_sets(tests, "test")
    measured: dict[str, list[str]] = (
        {t: list(test_sets) for t in trains} if pairs is None else {t: list(v) for t, v in pairs.items()}
    )
    for t, tested in measured.items():
        if t not in trains:
            raise ValueError(f"pairs names training set {t!r}; the training sets are {sorted(trains)}")
        missing = [s for s in tested if s not in test_sets]
        if missing:
            raise ValueError(f"pairs names test set(s) {missing}; the test sets are {sorted(test_sets)}")
    for t, samples in trains.items():
        labels = {int(s.label) for s in samples}
        if labels != {0, 1}:
            raise ValueError(
                f"the training set {t!r} needs malicious and benign samples; it has only label {labels}"
            )
    if not 0.0 < calibration_fraction < 1.0:
        raise ValueError(
            f"calibration_fraction must lie strictly between 0 and 1; got {calibration_fraction}"
        )
    _check_labels({**{f"training set {k!r}": v for k, v in trains.items()},
                   **{f"test set {k!r}": v for k, v in test_sets.items()}})  # fmt: skip
    if not allow_overlap:
        _check_overlap(trains, test_sets, measured)
    train_needs, test_needs = _needs(names)
    if (train_needs | test_needs) and model is None:
        raise ValueError(
            f"the detectors {[n for n in names if DETECTORS[n].needs - {'text'}]} read the model; pass one"
        )
    note = say or (lambda *a, **k: None)

    # 1. one collection of signals for every unique sample
    unique: list[Any] = []
    index: dict[tuple[str, str, str], int] = {}
    positions: dict[tuple[str, str], list[int]] = {}
    tested_names = {s for v in measured.values() for s in v}
    for role, sets in (
        ("train", {t: trains[t] for t in measured}),
        ("test", {s: test_sets[s] for s in tested_names}),
    ):
        for name, samples in sets.items():
            digest = sample_content(samples)
            rows = []
            for i, sample in enumerate(samples):
                key = _key(digest, i, sample)
                if key not in index:
                    index[key] = len(unique)
                    unique.append(sample)
                rows.append(index[key])
            positions[(role, name)] = rows
    forward_needs = (train_needs | test_needs) - {"answers"}
    if signals is None:
        note(
            f"signals: {len(unique)} unique prompts, {sorted(forward_needs) or 'none'} from one prefill each"
        )
        everything = collect_signals(model, unique, needs=forward_needs, batch_size=batch_size,
                                     refusal_words=refusal_words, progress=progress)  # fmt: skip
    else:
        note(
            f"signals: {len(unique)} unique prompts, {sorted(forward_needs) or 'none'} from the signals given"
        )
        everything = _given_signals(signals, unique, forward_needs)
    if "answers" in test_needs:
        test_rows = sorted({i for s in tested_names for i in positions[("test", s)]})
        note(f"answers: {len(test_rows)} unguarded answers of {max_new_tokens} tokens for model_refusal")
        answered = collect_signals(model, [unique[i] for i in test_rows], needs={"answers"}, batch_size=batch_size,
                                   max_new_tokens=max_new_tokens, progress=progress)  # fmt: skip
        answers = [""] * len(unique)
        for i, text in zip(test_rows, answered.answers or [], strict=True):
            answers[i] = text
        everything.answers = answers
        everything.timing["generate"] = answered.timing["generate"]
    timing = dict(everything.timing)
    collected = time.perf_counter() - started

    # 2. fit, calibrate, score
    results: list[dict[str, Any]] = []
    chosen: dict[str, dict[str, Any]] = {}
    for train_name, tested in measured.items():
        train_signals = everything.select(positions[("train", train_name)])
        fit_idx, calib_idx = _calibration_split(train_signals.labels, calibration_fraction, seed)
        fit_part, calib_part = train_signals.select(fit_idx), train_signals.select(calib_idx)
        test_signals = {s: everything.select(positions[("test", s)]) for s in tested}
        note(f"{train_name}: {len(names)} detectors fitted on {len(fit_idx)} prompts ({len(calib_idx)} calibrate), "
             f"scored on {', '.join(tested)}")  # fmt: skip
        for name in names:
            t0 = time.perf_counter()
            detector = make_detector(name, k=k, seed=seed, shots=shots, repeats=repeats, draws=draws).fit(
                fit_part
            )
            fit_s = time.perf_counter() - t0
            thresholds = _thresholds(detector, calib_part, target_fpr)
            chosen[f"{name}@{train_name}"] = {**detector.info(), "fit_s": fit_s, "thresholds": thresholds}
            for test_name in tested:
                signals = test_signals[test_name]
                t1 = time.perf_counter()
                scores = np.atleast_2d(detector.score(signals))
                score_ms = 1000 * (time.perf_counter() - t1) / len(signals)
                per_draw = [
                    score_metrics(signals.labels, row, thr, bootstrap=bootstrap, seed=seed)
                    for row, thr in zip(scores, thresholds, strict=True)
                ]
                row = mean_over_draws(per_draw)
                results.append({
                    "detector": name,
                    "train": train_name,
                    "test": test_name,
                    **{k_: row.get(k_) for k_ in ("auroc", "auroc_ci", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr",
                                                   "fpr_at_threshold")},
                    "extra_forwards": max_new_tokens - 1 if name == "model_refusal" else DETECTORS[name].extra_forwards,
                    "ms_per_prompt": score_ms + _signal_ms(name, timing),
                    "tpr_at_threshold": row.get("tpr_at_threshold"),
                    "threshold": float(np.mean(thresholds)),
                    "transfer": is_transfer(trains[train_name], test_sets[test_name]),
                    "n_positive": int(signals.labels.sum()),
                    "n_negative": int((signals.labels == 0).sum()),
                    "note": row.get("note", ""),
                    **{k_: row[k_] for k_ in ("auroc_spread", "auroc_draws", "roc") if k_ in row},
                })  # fmt: skip
    set_info: dict[str, dict[str, Any]] = {}
    for role, group in (("train", trains), ("test", test_sets)):
        for set_name, members in group.items():
            set_labels = [int(s.label) for s in members]
            set_info[f"{role}:{set_name}"] = {
                "n_positive": sum(set_labels),
                "n_negative": len(set_labels) - sum(set_labels),
                "sources": sorted({str(s.source) for s in members}),
                "with_image": sum(s.image is not None for s in members),
            }
    timing.update({"collect_s": collected, "total_s": time.perf_counter() - started})
    settings = {
        "k": k, "seed": seed, "calibration_fraction": calibration_fraction, "target_fpr": target_fpr,
        "bootstrap": bootstrap, "batch_size": batch_size, "max_new_tokens": max_new_tokens, "shots": list(shots),
        "repeats": repeats, "draws": draws, "refusal_words": list(refusal_words), "allow_overlap": allow_overlap,
        "pairs": measured, "model": dict(everything.provenance),
    }  # fmt: skip
    return Comparison(names, list(test_sets), list(trains), results, set_info, chosen, settings, timing)


def _given_signals(signals: Signals, unique: list[Any], needs: set[str]) -> Signals:
    """The rows of ``signals`` for ``unique`` (matched by id, prompt and image), checked to hold ``needs``."""
    lacking = sorted(n for n in needs if not signals.has(n))
    if lacking:
        raise ValueError(
            f"the signals given hold no {lacking}, which the chosen detectors read; collect them with "
            f"collect_signals(..., needs={sorted(needs)}) or pass signals=None"
        )
    digest = sample_content(signals.samples)
    row_of = {_key(digest, i, s): i for i, s in enumerate(signals.samples)}
    wanted = sample_content(unique)
    keys = [_key(wanted, i, s) for i, s in enumerate(unique)]
    missing = [key[0] for key in keys if key not in row_of]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ValueError(
            f"the signals given lack {len(missing)} of the {len(unique)} samples to measure ({shown}), or hold "
            "them with another prompt or image; collect signals for every sample, or pass signals=None"
        )
    return signals.select([row_of[key] for key in keys])


def _check_settings(**settings: Any) -> None:
    """Each of compare's numeric settings in its range, named as the caller wrote it, before any work."""
    for name in ("target_fpr", "calibration_fraction"):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise ValueError(f"{name} must be a number strictly between 0 and 1; got {value!r}")
    for name, low in (("k", 1), ("bootstrap", 0), ("batch_size", 1), ("max_new_tokens", 1), ("repeats", 1),
                      ("draws", 1)):  # fmt: skip
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}; got {value!r}")


def _thresholds(detector: Any, calib: Signals, target_fpr: float) -> list[float]:
    """One threshold per draw: at most ``target_fpr`` of the calibration part's benign prompts flagged."""
    if not detector.calibrated:
        return [0.5]
    scores = np.atleast_2d(detector.score(calib))
    return [float(tpr_at_fpr(calib.labels, row, target_fpr)[1]) for row in scores]


def _signal_ms(name: str, timing: Mapping[str, float]) -> float:
    """Per-prompt time of the work a detector's signal adds to the prefill forward (the lens, an answer)."""
    if name == "hidden_detect":
        return float(timing.get("lens", 0.0))
    if name == "model_refusal":
        return float(timing.get("generate", 0.0))
    return 0.0
