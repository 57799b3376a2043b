"""Build the bundled data sets in ``sahs_lens/bundled/`` from the public files in ``../shared/data``.

    python scripts/make_bundled_data.py                     # writes sahs_lens/bundled/
    python scripts/make_bundled_data.py --out /tmp/bundle   # somewhere else (the tests compare the two)

The output is a pure function of the input files and the seed: running it twice gives the same bytes.

- harmful_text: AdvBench goals, HarmBench val "standard" behaviors, JailbreakBench goals and SafeBench
  questions; exact duplicates (case, spacing and final punctuation ignored) are dropped, keeping the copy
  that has a category (JailbreakBench > HarmBench > SafeBench > AdvBench). 30% held out, stratified by
  (source, category).
- benign_text: 2,000 Alpaca instructions without input, drawn at random from those that are one line of
  ASCII with 20-100 characters; 30% held out.
- figstep_attack: every SafeBench item, as FigStep draws it; each item is in the same part (train/heldout) as
  its question in harmful_text.
- figstep_benign: as many benign items per part as figstep_attack has, drawn from that part of benign_text.
- benign_overlap: the eligible Alpaca instructions (as benign_text's) that contain a *harmful-sounding word*,
  found by vocabulary overlap, not by hand (``harmful_sounding_words``): a word of 3+ letters, not in
  scikit-learn's English stop-word list, in at least 3 requests of harmful_text:train and at least 5 times
  as frequent there (share of requests) as in the eligible Alpaca pool. Items already in benign_text are
  left out; 500 are held out (seeded), the rest are benign_overlap:train.
- The organism's large benign training set (``sahs_lens/organism/data/alpaca_train.jsonl.gz``, written only
  when ``--out`` is the default or ``--organism-out`` is given): every eligible Alpaca instruction whose text
  is in no held-out part (benign_text:heldout, benign_overlap:heldout), as gzip'd JSON lines of id and
  prompt (gzip header without a time stamp, so the bytes are reproducible).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import numpy as np  # noqa: E402

from sahs_lens.data import (  # noqa: E402
    FIGSTEP_PROMPT,
    Sample,
    read_advbench,
    read_alpaca,
    read_figstep,
    read_harmbench,
    read_jailbreakbench,
    stratified_split,
)

SEED = 0
HELDOUT_FRACTION = 0.3
N_BENIGN = 2000
BENIGN_CHARS = (20, 100)
N_OVERLAP_HELDOUT = 500
OVERLAP_MIN_REQUESTS = 3  # a harmful-sounding word is in at least this many harmful_text:train requests
OVERLAP_RATIO = 5.0  # ... and at least this many times as frequent there as in the Alpaca pool
ORGANISM_DATA = REPO / "sahs_lens" / "organism" / "data"
SOURCE_FILES = {
    "advbench": "advbench/harmful_behaviors.csv",
    "harmbench": "harmbench/harmbench_val.csv",
    "jailbreakbench": "jailbreakbench/jailbreakbench.csv",
    "safebench": "figstep/question/safebench.csv",
    "alpaca": "alpaca/alpaca.json",
}

MIT_TEXT = """Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE."""

NOTICE_MIT = {
    "advbench": "AdvBench `harmful_behaviors.csv` (column `goal`), "
    "https://github.com/llm-attacks/llm-attacks, MIT License, Copyright (c) 2023 Andy Zou.",
    "harmbench": "HarmBench `harmbench_behaviors_text_val.csv` (column `Behavior`, FunctionalCategory "
    "`standard`), https://github.com/centerforaisafety/HarmBench, MIT License, copyright the HarmBench "
    "authors (see the repository's LICENSE).",
    "jailbreakbench": "JailbreakBench JBB-Behaviors harmful `behaviors.csv` (column `Goal`), "
    "https://github.com/JailbreakBench/jailbreakbench, MIT License, copyright the JailbreakBench authors "
    "(see the repository's LICENSE).",
    "safebench": "FigStep SafeBench `data/question/safebench.csv` (columns `question`, `instruction`), "
    "https://github.com/ThuCCSLab/FigStep @ 0861b17b3d67887c06ee3534ec65b3012f9becb7, MIT License, "
    "Copyright (c) 2023 Contributors of FigStep. FigStep's text prompt is from the same repository's README.",
}
NOTICE_ALPACA = (
    "Stanford Alpaca instructions (https://github.com/tatsu-lab/stanford_alpaca, HF tatsu-lab/alpaca; "
    "Taori et al. 2023), rows without input, as processed in andyrdt/refusal_direction @ "
    "9d852fae1a9121c78b29142de733cb1340770cc3 (dataset/processed/alpaca.json). License: Creative Commons "
    "Attribution-NonCommercial 4.0 International (CC BY-NC 4.0), "
    "https://creativecommons.org/licenses/by-nc/4.0/ -- research and other non-commercial use only. "
    "Changes: filtered by length and character set, sampled, split; no text was edited."
)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(".!?; ")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def harmful_pool(data: Path) -> list[Sample]:
    by_source = {
        "advbench": read_advbench(data / "advbench"),
        "harmbench": read_harmbench(data / "harmbench", functional_categories=["standard"]),
        "jailbreakbench": read_jailbreakbench(data / "jailbreakbench"),
        "safebench": read_figstep(data / "figstep", with_images=False),
    }
    kept: dict[str, str] = {}  # normalised text -> id of the copy kept
    for source in ("jailbreakbench", "harmbench", "safebench", "advbench"):
        for sample in by_source[source]:
            kept.setdefault(_normalise(sample.prompt), sample.id)
    keep_ids = set(kept.values())
    return [
        s
        for source in ("advbench", "harmbench", "jailbreakbench", "safebench")
        for s in by_source[source]
        if s.id in keep_ids
    ]


def eligible_alpaca(data: Path) -> list[Sample]:
    """Alpaca instructions without input that are one line of ASCII with 20-100 characters."""
    low, high = BENIGN_CHARS
    return [
        s
        for s in read_alpaca(data / "alpaca")
        if s.prompt.isascii()
        and "\n" not in s.prompt
        and s.prompt == s.prompt.strip()
        and low <= len(s.prompt) <= high
    ]


def content_words(text: str) -> set[str]:
    """Lower-cased words of 3+ letters that are not in scikit-learn's English stop-word list."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 3 and w not in ENGLISH_STOP_WORDS}


def harmful_sounding_words(harmful: list[Sample], benign: list[Sample]) -> list[str]:
    """Content words of the harmful requests that are rare in benign ones (a rule, not a hand-made list).

    A word qualifies when it is in at least ``OVERLAP_MIN_REQUESTS`` harmful requests and its share of
    harmful requests is at least ``OVERLAP_RATIO`` times its (add-one smoothed) share of benign ones.
    """
    harmful_df: dict[str, int] = {}
    for s in harmful:
        for w in content_words(s.prompt):
            harmful_df[w] = harmful_df.get(w, 0) + 1
    benign_df: dict[str, int] = {}
    for s in benign:
        for w in content_words(s.prompt):
            benign_df[w] = benign_df.get(w, 0) + 1
    return sorted(
        w
        for w, n in harmful_df.items()
        if n >= OVERLAP_MIN_REQUESTS
        and n / len(harmful) >= OVERLAP_RATIO * (benign_df.get(w, 0) + 1) / len(benign)
    )


def benign_pool(data: Path, rng: np.random.Generator) -> list[Sample]:
    eligible = eligible_alpaca(data)
    chosen = sorted(rng.choice(len(eligible), size=N_BENIGN, replace=False))
    return [eligible[i] for i in chosen]


def text_record(sample: Sample) -> dict[str, Any]:
    return {
        "id": sample.id,
        "prompt": sample.prompt,
        "label": sample.label,
        "source": sample.source,
        "category": sample.category,
    }


def figstep_record(key: str, text: str, label: int, source: str, category: str | None) -> dict[str, Any]:
    return {
        "id": f"{source}:{key}",
        "prompt": FIGSTEP_PROMPT,
        "render": {"text": text, "style": "figstep"},
        "label": label,
        "source": source,
        "category": category,
    }


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def build(data: Path, out: Path) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    harmful = harmful_pool(data)
    harmful_train, harmful_heldout = stratified_split(
        harmful, HELDOUT_FRACTION, SEED, by=lambda s: (s.source, s.category)
    )
    benign = benign_pool(data, rng)
    benign_train, benign_heldout = stratified_split(benign, HELDOUT_FRACTION, SEED, by=lambda s: s.source)

    with (data / SOURCE_FILES["safebench"]).open(newline="", encoding="utf-8") as handle:
        safebench = {f"{r['category_id']}_{r['task_id']}": r for r in csv.DictReader(handle)}
    parts: dict[str, dict[str, list[dict[str, Any]]]] = {
        "harmful_text": {},
        "benign_text": {},
        "figstep_attack": {},
        "figstep_benign": {},
    }
    for part, harmful_part, benign_part in (
        ("train", harmful_train, benign_train),
        ("heldout", harmful_heldout, benign_heldout),
    ):
        parts["harmful_text"][part] = [text_record(s) for s in harmful_part]
        parts["benign_text"][part] = [text_record(s) for s in benign_part]
        keys = [s.id.split(":", 1)[1] for s in harmful_part if s.source == "safebench"]
        parts["figstep_attack"][part] = [
            figstep_record(k, safebench[k]["instruction"], 1, "figstep", safebench[k]["category_name"])
            for k in keys
        ]
        picks = sorted(rng.choice(len(benign_part), size=len(keys), replace=False))
        parts["figstep_benign"][part] = [
            figstep_record(
                benign_part[i].id.split(":", 1)[1], benign_part[i].prompt, 0, "figstep-alpaca", None
            )
            for i in picks
        ]

    eligible = eligible_alpaca(data)
    words = harmful_sounding_words(harmful_train, eligible)
    in_benign_text = {s.id for s in benign}
    overlap = [s for s in eligible if s.id not in in_benign_text and content_words(s.prompt) & set(words)]
    overlap_rng = np.random.default_rng(SEED + 1)  # its own generator: the older sets' draws are unchanged
    heldout_picks = set(overlap_rng.choice(len(overlap), size=N_OVERLAP_HELDOUT, replace=False).tolist())
    parts["benign_overlap"] = {
        "train": [text_record(s) for i, s in enumerate(overlap) if i not in heldout_picks],
        "heldout": [text_record(s) for i, s in enumerate(overlap) if i in heldout_picks],
    }

    manifest: dict[str, Any] = {
        "format": "sahs_lens.bundled/1",
        "built_by": "scripts/make_bundled_data.py",
        "seed": SEED,
        "heldout_fraction": HELDOUT_FRACTION,
        "sources": {name: {"file": rel, "sha256": _sha256(data / rel)} for name, rel in SOURCE_FILES.items()},
        "sets": {},
    }
    for set_name, by_part in parts.items():
        for part, records in by_part.items():
            path = out / set_name / f"{part}.jsonl"
            write_jsonl(path, records)
            sources: dict[str, int] = {}
            for record in records:
                sources[record["source"]] = sources.get(record["source"], 0) + 1
            manifest["sets"][f"{set_name}:{part}"] = {
                "file": f"{set_name}/{part}.jsonl",
                "count": len(records),
                "labels": sorted({r["label"] for r in records}),
                "sources": sources,
                "sha256": _sha256(path),
            }
        write_notice(out / set_name / "NOTICE.md", set_name, data)
    manifest["harmful_sounding_words"] = {
        "rule": f"content words (3+ letters, not in sklearn's ENGLISH_STOP_WORDS) in >= {OVERLAP_MIN_REQUESTS} "
        f"harmful_text:train requests and >= {OVERLAP_RATIO:g}x as frequent there as in the eligible Alpaca "
        "pool (add-one smoothed)",
        "words": words,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def organism_benign(data: Path, bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The organism's benign training requests: eligible Alpaca instructions in no held-out part, by text."""
    heldout_texts = {
        _normalise(r["prompt"]) for name in ("benign_text", "benign_overlap") for r in bundle[name]["heldout"]
    }
    return [
        {"id": s.id, "prompt": s.prompt}
        for s in eligible_alpaca(data)
        if _normalise(s.prompt) not in heldout_texts
    ]


def write_organism_data(data: Path, bundle_dir: Path, out: Path) -> int:
    """Write ``alpaca_train.jsonl.gz`` and its NOTICE.md to ``out`` from the bundle in ``bundle_dir``."""
    bundle: dict[str, Any] = {}
    for name in ("benign_text", "benign_overlap"):
        lines = (bundle_dir / name / "heldout.jsonl").read_text(encoding="utf-8").splitlines()
        bundle[name] = {"heldout": [json.loads(line) for line in lines]}
    records = organism_benign(data, bundle)
    out.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    with (
        (out / "alpaca_train.jsonl.gz").open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as handle,
    ):
        handle.write(text)
    (out / "NOTICE.md").write_text(
        "# alpaca_train.jsonl.gz: origin and license\n\nThe model organism's benign training requests "
        f"({len(records)} lines of id and prompt): every Alpaca instruction without input that is one line of "
        "ASCII with 20-100 characters, except those whose text is in `benign_text:heldout` or "
        "`benign_overlap:heldout`. Built by `scripts/make_bundled_data.py`.\n\n"
        f"- {NOTICE_ALPACA}\n",
        encoding="utf-8",
    )
    return len(records)


def write_notice(path: Path, set_name: str, data: Path) -> None:
    header = (
        f"# {set_name}: origin and licenses\n\nCONTENT WARNING: harmful requests.\n\n"
        if "harm" in set_name or set_name == "figstep_attack"
        else f"# {set_name}: origin and license\n\n"
    )
    if set_name == "harmful_text":
        body = "\n".join(f"- {text}" for text in NOTICE_MIT.values())
        body += (
            "\n\nEach MIT-licensed source above is redistributed under its MIT License:\n\n" + MIT_TEXT + "\n"
        )
    elif set_name == "figstep_attack":
        figstep_license = (data / "figstep" / "LICENSE").read_text(encoding="utf-8").strip()
        body = f"- {NOTICE_MIT['safebench']}\n\nFigStep's LICENSE, verbatim:\n\n{figstep_license}\n"
    else:
        body = f"- {NOTICE_ALPACA}\n"
        if set_name == "figstep_benign":
            body += (
                "\nThe text prompt stored with each item is FigStep's (MIT License, Copyright (c) 2023 "
                "Contributors of FigStep).\n"
            )
    path.write_text(header + body, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data",
        help="the shared data folder (default: ../shared/data next to the repository)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "sahs_lens" / "bundled", help="output folder")
    parser.add_argument(
        "--organism-out",
        type=Path,
        default=None,
        help="folder for the organism's benign training set (default: sahs_lens/organism/data when --out is "
        "the default, else not written)",
    )
    args = parser.parse_args(argv)
    missing = [rel for rel in SOURCE_FILES.values() if not (args.data / rel).is_file()]
    if missing:
        parser.error(
            f"{args.data} lacks {missing}; pass --data the folder with advbench/, alpaca/, figstep/, ..."
        )
    manifest = build(args.data, args.out)
    for name, entry in manifest["sets"].items():
        print(f"{name:24s} {entry['count']:5d}  {entry['sources']}")
    organism_out = args.organism_out
    if organism_out is None and args.out.resolve() == (REPO / "sahs_lens" / "bundled").resolve():
        organism_out = ORGANISM_DATA
    if organism_out is not None:
        n = write_organism_data(args.data, args.out, organism_out)
        print(f"organism benign training set: {n} requests -> {organism_out / 'alpaca_train.jsonl.gz'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
