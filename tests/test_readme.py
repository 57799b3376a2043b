"""The README's Python examples run as written (in order, sharing one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # the example saves a guard into the working directory
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 2
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert tuple(namespace["z"].shape[2:]) == (4, 16)  # type: ignore[attr-defined]
    assert len(namespace["heads"]) == 4  # type: ignore[arg-type]
    assert len(namespace["out"].texts) == 1  # type: ignore[attr-defined]
    assert (tmp_path / "guard" / "guard.json").exists()
