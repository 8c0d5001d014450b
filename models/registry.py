"""Which models exist, what family (worker queue) each belongs to, and how to load one.

Torch-free: a spec names its loader as an import string, so the node can route
and validate configuration without importing torch. Models brought by the user
are `ModelSpec` objects named in the configuration (`[analysis] model_plugins`).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.interface import Model

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    family: str  # one worker queue per family, e.g. "ct" or "cxr"
    loader: str  # "package.module:function"; function(device: str) -> Model
    description: str = ""
    trainer: str | None = None  # "module:function"; function(seed: int, steps: int | None) -> dict, for built-ins
    evaluator: str | None = None  # "module:function"; function(model, seed: int, cases: int) -> dict of figures

    def __post_init__(self) -> None:
        for key in ("name", "family"):
            if not _NAME.match(getattr(self, key)):
                raise ValueError(
                    f"model {key} must be lowercase letters, digits, '.', '_' or '-': {getattr(self, key)!r}"
                )
        if not self.version:
            raise ValueError(f"model {self.name}: version is required (it is part of every result UID)")
        if ":" not in self.loader:
            raise ValueError(f"model {self.name}: loader must be 'module:function', got {self.loader!r}")

    def train(self, seed: int, steps: int | None) -> dict:
        if self.trainer is None:
            raise ValueError(f"model {self.name} has no built-in training")
        return _import(self.trainer)(seed, steps)

    def evaluate(self, device: str, seed: int, cases: int) -> dict:
        if self.evaluator is None:
            raise ValueError(f"model {self.name} has no built-in evaluation")
        return _import(self.evaluator)(self.load(device), seed, cases)

    def load(self, device: str) -> Model:
        model = _import(self.loader)(device)
        if (model.name, model.version) != (self.name, self.version):
            raise ValueError(
                f"loader {self.loader} returned {model.name} {model.version}, expected {self.name} {self.version}"
            )
        return model


BUILTIN: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="standin-hyperdense",
        version="0.1.0",
        family="ct",
        loader="models.standin:load",
        description="Stand-in until the trained models land: flags hyperdense (60-100 HU) regions in CT.",
    ),
    ModelSpec(
        name="ct-hemorrhage",
        version="0.1.0",
        family="ct",
        loader="models.ct_hemorrhage:load",
        description="Non-contrast CT head: 3D U-Net segmentation of hyperdense bleeds. Trained on phantoms only.",
        trainer="models.train_ct_hemorrhage:train_seeded",
        evaluator="models.ct_hemorrhage:evaluate",
    ),
)


class UnknownModel(ValueError):
    pass


class Registry:
    def __init__(self, specs: tuple[ModelSpec, ...] | list[ModelSpec]) -> None:
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"model {spec.name!r} is defined twice")
            self._specs[spec.name] = spec

    def get(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs)) or "none"
            raise UnknownModel(f"unknown model {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._specs)

    def families(self) -> list[str]:
        return sorted({s.family for s in self._specs.values()})


def build_registry(plugins: list[str] = ()) -> Registry:  # type: ignore[assignment]
    """The built-in models plus each plugin: an import string naming a ModelSpec or a list of them."""
    specs = list(BUILTIN)
    for plugin in plugins:
        found = _import(plugin)
        found = found if isinstance(found, list | tuple) else [found]
        for spec in found:
            if not isinstance(spec, ModelSpec):
                raise ValueError(f"model plugin {plugin} must name a ModelSpec or a list of them")
            specs.append(spec)
    return Registry(specs)


def _import(path: str):  # noqa: ANN202
    module_name, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {path}: {exc}") from exc
