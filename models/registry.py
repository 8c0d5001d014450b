"""Which models exist, what family (worker queue) each belongs to, and how to load one.

Torch-free: a spec names its loader as an import string, so the node can route
and validate configuration without importing torch. Most models are a manifest
(models/manifest.py) run by the generic detector: the built-ins in
models/builtin/, and the user's in `[analysis] models_dir`. Python plugins
(`[analysis] model_plugins`) name `ModelSpec` objects with their own loader.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.manifest import Manifest, ManifestError, load_manifest, version_uid, weights_uid

if TYPE_CHECKING:
    from models.interface import Model

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    family: str  # one worker queue per family, e.g. "ct" or "cxr"
    loader: str  # "package.module:function"; function(spec: ModelSpec, device: str) -> Model
    description: str = ""
    trainer: str | None = None  # "module:function"; function(seed: int, steps: int | None) -> dict, for built-ins
    # held-out phantoms: "module:function"; function(seed: int, count: int) -> Iterator[phantom_evaluation.Case]
    phantoms: str | None = None
    phantom_cases: int = 100  # how many `dicomnode models evaluate` scores by default
    manifest: Manifest | None = None
    manifest_path: Path | None = None

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

    @classmethod
    def from_manifest(
        cls, path: Path, trainer: str | None = None, phantoms: str | None = None, phantom_cases: int = 100
    ) -> ModelSpec:
        """A model described by a manifest, run by the generic detector (models/detector.py)."""
        m = load_manifest(path)
        loader = "models.detector:load"
        return cls(m.name, m.version, m.family, loader, m.description, trainer, phantoms, phantom_cases, m, path)

    @property
    def weights_path(self) -> Path | None:
        if self.manifest is None or self.manifest.weights is None or self.manifest_path is None:
            return None
        return self.manifest_path.parent / self.manifest.weights

    @cached_property
    def uid(self) -> str:
        """Device UID of the algorithm: changes whenever the weights (or, without weights, the version) change."""
        weights = self.weights_path
        return weights_uid(weights) if weights is not None else version_uid(self.name, self.version)

    def train(self, seed: int, steps: int | None) -> dict:
        if self.trainer is None:
            raise ValueError(f"model {self.name} has no built-in training")
        return _import(self.trainer)(seed, steps)

    def evaluate(
        self, device: str, seed: int, cases: int | None = None, on_case: Callable[[], None] | None = None
    ) -> dict:
        """Figures on held-out phantoms; `on_case` is called after each scored case."""
        from models.phantom_evaluation import figures

        scored, detector = self.score_phantoms(device, seed, cases, on_case)
        return figures(detector, scored)

    def score_phantoms(
        self, device: str, seed: int, cases: int | None = None, on_case: Callable[[], None] | None = None
    ) -> tuple[Any, Model]:
        """Each held-out phantom's result (models.phantom_evaluation.Scored), and the loaded model."""
        from models.phantom_evaluation import score_cases

        if self.phantoms is None:
            raise ValueError(f"model {self.name} has no phantom evaluation; evaluate it on a labelled DICOM folder")
        model = self.load(device)
        return score_cases(model, _import(self.phantoms)(seed, cases or self.phantom_cases), on_case), model

    def load(self, device: str) -> Model:
        model = _import(self.loader)(self, device)
        if (model.name, model.version) != (self.name, self.version):
            raise ValueError(
                f"loader {self.loader} returned {model.name} {model.version}, expected {self.name} {self.version}"
            )
        return model


_BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"


def builtin_specs() -> tuple[ModelSpec, ...]:
    """The models that ship with dicomnode; their manifests and weights live in models/builtin/<name>/."""
    return (
        ModelSpec.from_manifest(_BUILTIN_DIR / "standin-hyperdense" / "manifest.toml"),
        ModelSpec.from_manifest(
            _BUILTIN_DIR / "ct-hemorrhage" / "manifest.toml",
            trainer="models.train_ct_hemorrhage:train_seeded",
            phantoms="models.phantom_evaluation:ct_head_cases",
        ),
        ModelSpec.from_manifest(
            _BUILTIN_DIR / "cxr-pneumothorax" / "manifest.toml",
            trainer="models.train_cxr_pneumothorax:train_seeded",
            phantoms="models.phantom_evaluation:chest_cases",
            phantom_cases=200,
        ),
    )


def builtin_spec(name: str) -> ModelSpec:
    return next(s for s in builtin_specs() if s.name == name)


def directory_specs(directory: Path) -> list[ModelSpec]:
    """Bring-your-own models: every <directory>/*/manifest.toml (ManifestError names a bad one)."""
    if not directory.is_dir():
        raise ManifestError(f"models directory {directory} does not exist")
    return [ModelSpec.from_manifest(path) for path in sorted(directory.glob("*/manifest.toml"))]


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


def build_registry(plugins: list[str] = (), models_dir: Path | None = None) -> Registry:  # type: ignore[assignment]
    """The built-in models, the models in `models_dir`, and each plugin (an import string naming a ModelSpec
    or a list of them)."""
    specs = list(builtin_specs())
    if models_dir is not None:
        specs += directory_specs(models_dir)
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
