"""Import every tiny-checkpoint builder module so that each registers itself."""

from model_adapters.testing import llava  # noqa: F401
