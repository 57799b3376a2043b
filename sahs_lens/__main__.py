"""``python -m sahs_lens``: the ``sahs-lens`` command (also under ``torchrun -m sahs_lens``)."""

from sahs_lens.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
