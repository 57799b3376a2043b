"""Import every built-in family module so that each registers itself."""

from model_adapters import llava  # noqa: F401
