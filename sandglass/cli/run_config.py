"""From ``sandglass train`` options and an optional TOML file to a checked :class:`RunConfig`.

The TOML file has the sections ``[model]``, ``[data]`` and ``[train]``, whose keys are the fields of
``SandGlassConfig``/``TransformerConfig``/``OriginalConfig`` (plus ``preset``), ``DataConfig`` and
``TrainConfig`` (dashes or underscores). Values are layered: the preset (or the architecture's defaults), then
the file, then the command line, which wins. ``max_time`` may be a number of seconds or a duration like "2h".
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sandglass.config import (
    ARCHS,
    CONFIG_VERSION,
    MODEL_CONFIGS,
    ConfigError,
    DataConfig,
    RunConfig,
    TrainConfig,
    preset,
)

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SECTIONS = ("model", "data", "train")
# Numbers that may be zero; every other number in a configuration must be above zero.
ZERO_ALLOWED = frozenset({"warmup_steps", "weight_decay", "dropout", "label_smoothing", "seed", "max_nonfinite"})
BELOW_ONE = frozenset({"dropout", "label_smoothing"})
MIN_VOCAB_SIZE = 5  # the four special pieces and at least one real one
CLI_NAMES = {"data_dir": "--data", "warmup_steps": "--warmup"}
LANGUAGE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?")
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([dhms])")
SECONDS_PER_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: str | float) -> float:
    """Seconds in a duration such as ``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"``, or a plain number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = DURATION_PART.findall(text)
            if not parts or "".join(number + unit for number, unit in parts) != text:
                raise ValueError(f"{value!r} is not a duration; write it like 90s, 30m, 2h or 1h30m") from None
            seconds = sum(float(number) * SECONDS_PER_UNIT[unit] for number, unit in parts)
    if not seconds > 0:
        raise ValueError(f"a duration must be above zero, got {value!r}")
    return seconds


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
    config = RunConfig.from_dict(raw)
    check_values(config)
    return config


def with_train_overrides(
    config: RunConfig, file_sections: dict[str, dict[str, Any]], train: dict[str, Any]
) -> RunConfig:
    """``config`` (a run being resumed) with its training settings changed by the file and the command line."""
    raw = config.to_dict()
    raw["train"] = raw["train"] | file_sections.get("train", {}) | _given(train)
    updated = RunConfig.from_dict(raw)
    check_values(updated)
    return updated


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


def check_values(config: RunConfig) -> None:
    """Raise ConfigError naming the first setting of the wrong type or out of range."""
    for section in SECTIONS:
        part = getattr(config, section)
        hints = typing.get_type_hints(type(part))
        for field in dataclasses.fields(part):
            value = getattr(part, field.name)
            problem = _type_problem(value, hints[field.name]) or _range_problem(field.name, value)
            if problem:
                raise ConfigError(f"[{section}] {field.name} {problem}, got {value!r}{_where(field.name)}")
    for name in ("src", "tgt"):
        code = getattr(config.data, name)
        if not LANGUAGE.fullmatch(code):
            raise ConfigError(f"unknown language {code!r} for --{name}; use a language code such as de or en")
    if not DEVICE.fullmatch(config.train.device):
        raise ConfigError(f"unknown device {config.train.device!r}; use auto, cpu, cuda, cuda:N or mps")


def _where(name: str) -> str:
    cli_name = CLI_NAMES.get(name, "--" + name.replace("_", "-"))
    return f" (set by {cli_name} or the --config file)"


def _type_problem(value: Any, hint: Any) -> str | None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return None if value in args else f"must be one of {', '.join(map(str, args))}"
    if origin in (typing.Union, types.UnionType):
        problems = [_type_problem(value, option) for option in args]
        return None if None in problems else problems[0]
    if origin is tuple:
        if not isinstance(value, tuple):
            return "must be a list of numbers"
        element = args[0]
        if args[-1] is not Ellipsis and len(value) != len(args):
            return f"must be a list of {len(args)} numbers"
        return next((problem for item in value if (problem := _type_problem(item, element))), None)
    if hint is type(None):
        return None if value is None else "must be unset"
    if hint is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
    if hint is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "must be a number"
    if hint is str:
        return None if isinstance(value, str) else "must be a string"
    return None


def _range_problem(name: str, value: Any) -> str | None:
    numbers = value if isinstance(value, tuple) else (value,)
    if not all(isinstance(number, (int, float)) and not isinstance(number, bool) for number in numbers):
        return None
    if name == "vocab_size" and value < MIN_VOCAB_SIZE:
        return f"must be at least {MIN_VOCAB_SIZE} (4 special pieces and 1 real one)"
    if name in BELOW_ONE and not all(0 <= number < 1 for number in numbers):
        return "must be in [0, 1)"
    if name == "betas" and not all(0 <= number < 1 for number in numbers):
        return "must be in [0, 1)"
    if name in ZERO_ALLOWED:
        return None if all(number >= 0 for number in numbers) else "must not be negative"
    return None if all(number > 0 for number in numbers) else "must be above zero"


def default_run_dir(config_name: str, dataset: str, root: Path = Path("checkpoints")) -> Path:
    """A new folder ``root/<preset>-<dataset>-<time>`` (a path data set is named by its file or folder)."""
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(dataset.split(",")[0]).name.split(".")[0]) or "data"
    stem = f"{config_name}-{label}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir, number = root / stem, 1
    while run_dir.exists():
        number += 1
        run_dir = root / f"{stem}-{number}"
    return run_dir
