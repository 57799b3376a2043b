"""A misspelled option is answered with the closest option of the command that was asked for."""

from __future__ import annotations

import pytest

from sahs_lens.cli import main


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["demo", "--quik"], "--quik: did you mean --quick?"),
        (
            ["guard", "fit", "--acts", "a", "--heads", "b", "--out", "c", "--calibarte", "d"],
            "did you mean --calibrate?",
        ),
        (["serve", "--guard", "g", "--max-bach", "4"], "did you mean --max-batch?"),
    ],
)
def test_a_misspelled_option_gets_a_suggestion(
    argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert hint in capsys.readouterr().err


def test_an_unknown_word_without_a_near_option_gets_none(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--zzzzzz"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: --zzzzzz" in err and "did you mean" not in err


def test_a_header_only_csv_is_named(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "empty.csv").write_text("prompt\n")
    assert (
        main(["extract", "--data", f"csv:{tmp_path / 'empty.csv'}:prompt:0", "--out", str(tmp_path / "a")])
        == 2
    )
    assert "empty.csv has a header but no rows" in capsys.readouterr().err
