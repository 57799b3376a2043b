"""Numbers in the command line's help are the code's numbers, not a copy that drifts from them."""

from __future__ import annotations

import pytest

from sahs_lens.cli import main
from sahs_lens.cli.help_text import shipped_recipe


def test_organism_train_help_states_the_codes_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    from sahs_lens.organism.recipe import OrganismConfig

    steps, minutes, cores = shipped_recipe()
    assert steps == OrganismConfig.steps, (
        "the shipped checkpoint was trained with another step count than the default"
    )
    with pytest.raises(SystemExit):
        main(["organism", "train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        f"the shipped recipe: {OrganismConfig.steps:,} steps, which took {minutes:.0f} minutes on {cores} CPU cores"
        in text
    )
    assert f"(default: the shipped recipe, {OrganismConfig.steps})" in text
