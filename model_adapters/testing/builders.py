"""Import every tiny-checkpoint builder module so that each registers itself."""

from model_adapters.testing import (
    gemma3,  # noqa: F401
    idefics3,  # noqa: F401
    llava,  # noqa: F401
    llava_next,  # noqa: F401
)
