"""TOML → frozen dataclasses, strictly: an unknown or mistyped key is an error naming its path."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from pathlib import Path
from typing import Any

from merpati.config.schema import Config, StorageConfig, TlsConfig

DEFAULT_CONFIG = "./var/merpati.toml"
NOT_KEYS = {"source"}


class ConfigError(Exception):
    """A configuration problem, with the key path in the message."""


def default_config_path() -> Path:
    return Path(os.environ.get("MERPATI_CONFIG") or DEFAULT_CONFIG)


def load_config(path: Path) -> Config:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (run `merpati init` or pass -c)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    config = build(Config, raw, "")
    return resolve_paths(dataclasses.replace(config, source=path.resolve()), path.resolve().parent)


def build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)} - NOT_KEYS
    values: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            raise ConfigError(f"unknown configuration key: {path}")
        values[key] = convert(hints[key], value, path)
    return cls(**values)


def convert(hint: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return build(hint, value, path)
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list")
        return tuple(convert(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if hint is Path:
        return Path(expect(str, value, path))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return expect(hint, value, path)


def expect(kind: type, value: Any, path: str) -> Any:
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise ConfigError(f"{path}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def resolve_paths(config: Config, base: Path) -> Config:
    """Relative paths resolve against the config file's folder."""

    def absolute(p: str) -> str:
        return str(base / p) if p and not os.path.isabs(p) else p

    data_dir = config.data_dir if config.data_dir.is_absolute() else base / config.data_dir
    url = config.storage.url
    if url.startswith("sqlite:") and not url.startswith("sqlite:/"):
        # "sqlite:relative/file.db": relative to the config file; "sqlite:///abs/file.db" is absolute.
        url = "sqlite:///" + absolute(url[len("sqlite:"):]).lstrip("/")
    return dataclasses.replace(
        config,
        data_dir=data_dir,
        storage=StorageConfig(url=url),
        tls=TlsConfig(cert=absolute(config.tls.cert), key=absolute(config.tls.key)),
    )
