"""From ``sandglass train`` options and an optional TOML file to a checked :class:`RunConfig`.

The TOML file has the sections ``[model]``, ``[data]`` and ``[train]``, whose keys are the fields of
``SandGlassConfig``/``TransformerConfig``/``OriginalConfig`` (plus ``preset``), ``DataConfig`` and
``TrainConfig`` (dashes or underscores). Values are layered: the preset (or the architecture's defaults), then
the file, then the command line, which wins. ``max_time`` may be a number of seconds or a duration like "2h".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sandglass.config import (
    ARCHS,
    CONFIG_VERSION,
    MODEL_CONFIGS,
    ConfigError,
    DataConfig,
    RunConfig,
    TrainConfig,
    check_config,
    preset,
)
from sandglass.durations import parse_duration

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SECTIONS = ("model", "data", "train")
CLI_NAMES = {"data_dir": "--data", "warmup_steps": "--warmup"}


def read_config_file(path: Path) -> dict[str, dict[str, Any]]:
    """The sections of a TOML configuration file, with keys normalized to field names."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(2, "no such configuration file; check the --config path", str(path)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid TOML ({error}); fix the file") from None
    sections = {}
    for name, section in raw.items():
        if name not in SECTIONS or not isinstance(section, dict):
            raise ConfigError(
                f"{path}: unexpected {name!r}; the file holds only the sections {', '.join(f'[{s}]' for s in SECTIONS)}"
            )
        sections[name] = {key.replace("-", "_"): value for key, value in section.items()}
    if "max_time" in sections.get("train", {}):
        try:
            sections["train"]["max_time"] = parse_duration(sections["train"]["max_time"])
        except ValueError as error:
            raise ConfigError(f"{path}: [train] max_time: {error}") from None
    return sections


def build_run_config(
    *,
    file_sections: dict[str, dict[str, Any]] | None = None,
    preset_name: str | None = None,
    arch: str | None = None,
    data: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
) -> RunConfig:
    """Layer preset (or architecture defaults) ← file sections ← command line values (None = not given)."""
    file_sections = file_sections or {}
    file_model = dict(file_sections.get("model", {}))
    file_preset, file_arch = file_model.pop("preset", None), file_model.pop("arch", None)
    if preset_name is not None or arch is not None:  # the command line chooses the model
        file_preset = file_arch = None
    model_config, train_defaults = _base_model(preset_name or file_preset, arch or file_arch)
    raw = {
        "version": CONFIG_VERSION,
        "model": dataclasses.asdict(model_config) | file_model,
        "data": dataclasses.asdict(DataConfig()) | file_sections.get("data", {}) | _given(data),
        "train": dataclasses.asdict(train_defaults) | file_sections.get("train", {}) | _given(train),
    }
    return checked(RunConfig.from_dict(raw), option_fields=[*(data or {}), *(train or {})])


def with_train_overrides(
    config: RunConfig, file_sections: dict[str, dict[str, Any]], train: dict[str, Any]
) -> RunConfig:
    """``config`` (a run being resumed) with its training settings changed by the file and the command line."""
    raw = config.to_dict()
    raw["train"] = raw["train"] | file_sections.get("train", {}) | _given(train)
    return checked(RunConfig.from_dict(raw), option_fields=train)


def _base_model(preset_name: str | None, arch: str | None) -> tuple[Any, TrainConfig]:
    if arch is not None and arch not in ARCHS:
        raise ConfigError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if preset_name is None:
        return MODEL_CONFIGS[arch or "sandglass"](), TrainConfig()
    chosen = preset(preset_name)
    if arch is not None and chosen.model.arch != arch:
        raise ConfigError(
            f"preset {preset_name!r} is a {chosen.model.arch} model but the architecture is {arch!r}; "
            "give only one of --preset and --arch"
        )
    return chosen.model, chosen.train


def _given(values: dict[str, Any] | None) -> dict[str, Any]:
    return {name: value for name, value in (values or {}).items() if value is not None}


def checked(config: RunConfig, option_fields: Iterable[str] = ()) -> RunConfig:
    """``config`` once :func:`check_config` passes; its error also says where the field is set.

    ``option_fields`` are the fields the command line has options for; any other is set only in the file (or
    kept from the preset), so the error names no option that does not exist.
    """
    try:
        check_config(config)
    except ConfigError as error:
        if error.field is None:
            raise
        if error.field not in set(option_fields):
            raise ConfigError(f"{error} (set in the --config file or the preset)", field=error.field) from None
        option = CLI_NAMES.get(error.field, "--" + error.field.replace("_", "-"))
        raise ConfigError(f"{error} (set by {option} or the --config file)", field=error.field) from None
    return config


def default_run_dir(config_name: str, dataset: str, root: Path = Path("checkpoints")) -> Path:
    """A new folder ``root/<preset>-<dataset>-<time>`` (a path data set is named by its file or folder)."""
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(dataset.split(",")[0]).name.split(".")[0]) or "data"
    stem = f"{config_name}-{label}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir, number = root / stem, 1
    while run_dir.exists():
        number += 1
        run_dir = root / f"{stem}-{number}"
    return run_dir
