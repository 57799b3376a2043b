"""Import every built-in family module so that each registers itself."""

from model_adapters import (
    gemma3,  # noqa: F401
    idefics3,  # noqa: F401
    llava,  # noqa: F401
    llava_next,  # noqa: F401
)
