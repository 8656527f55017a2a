"""One command line over several dataclasses, trl's way, with each field declared once.

:class:`LayeredParser` is trl's ``TrlParser`` (flags ``--field_name`` and ``--field-name`` derived
from dataclass fields, their help from the field metadata) with three additions the recipes need:

- a field name that more than one dataclass has (``seed`` in both ``AuditConfig`` and trl's
  ``SFTConfig``) is declared once, by the first dataclass that has it, and its value goes to every
  dataclass that has it; its help says so;
- values come in layers, each above the one before: the dataclasses' defaults < :meth:`layer`
  calls in the order made (a preset, the recipe defaults) < a ``--config`` YAML file < values
  passed in code < command-line flags. Unknown keys in a layer are an error naming them;
- it remembers which fields were set explicitly and where (``explicit``), so that a setting that
  is derived from others can tell "left alone" from "set to a conflicting value".
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from .errors import ConfigError

COMMAND_LINE = "command line"


def _trl_parser() -> type:
    from trl import TrlParser

    return TrlParser


def read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"--config {path}: not valid YAML ({error})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"--config {path}: must hold a mapping of field: value, got {type(loaded).__name__}")
    return loaded


def make_layered_parser(dataclass_types: Sequence[type], **kwargs: Any) -> LayeredParser:
    """Build a :class:`LayeredParser` (its base class, trl's ``TrlParser``, is imported here, lazily);
    ``kwargs`` are :class:`LayeredParserMixin`'s and argparse's."""
    cls = type("LayeredParser", (LayeredParserMixin, _trl_parser()), {})
    kwargs.setdefault("allow_abbrev", False)  # with trl's hundred-odd flags a typo must not pick one
    return cls(dataclass_types, **kwargs)


class LayeredParserMixin:
    """Mixed into trl's ``TrlParser`` by :func:`make_layered_parser` (so importing this module stays light).

    ``groups``: a --help section title per dataclass; ``aliases``: more flags for a field; ``helps``:
    a field's help replaced; ``renamed``: old key -> what replaces it, named when an old key is met.
    """

    def __init__(
        self,
        dataclass_types: Sequence[type],
        *,
        groups: Mapping[type, str] | None = None,
        aliases: Mapping[str, Sequence[str]] | None = None,
        helps: Mapping[str, str] | None = None,
        renamed: Mapping[str, str] | None = None,
        config_flags: Sequence[str] = ("--config",),
        config_help: str = "a YAML file of field: value pairs (flags override it)",
        **kwargs: Any,
    ) -> None:
        self._groups = dict(groups or {})
        self.renamed = dict(renamed or {})
        self.owner: dict[str, type] = {}  # field name -> the dataclass that declared it
        self.explicit: dict[str, str] = {}  # field name -> where it was set ("command line", a file, ...)
        super().__init__(list(dataclass_types), **kwargs)
        self.config_flags = tuple(config_flags)
        self.add_argument(*self.config_flags, dest="config", metavar="YAML", help=config_help)
        for dest, names in (aliases or {}).items():
            self.add_alias(dest, *names)
        for dest, text in (helps or {}).items():
            self._action(dest).help = text

    # -- declaration ---------------------------------------------------------------------------

    def _add_dataclass_arguments(self, dtype: type) -> None:
        title = self._groups.get(dtype)
        parser = self.add_argument_group(title) if title else self
        hints = get_type_hints(dtype)
        for field in dataclasses.fields(dtype):
            if not field.init:
                continue
            if field.name in self.owner:  # declared by an earlier dataclass: one flag sets both
                action = self._action(field.name)
                action.help = f"{action.help or ''} [also sets {dtype.__name__}.{field.name}]".strip()
                continue
            field.type = hints[field.name]
            self._parse_dataclass_field(parser, field)
            self.owner[field.name] = dtype

    def _action(self, dest: str) -> argparse.Action:
        for action in self._actions:
            if action.dest == dest and f"--{dest}" in action.option_strings:
                return action
        raise KeyError(dest)

    def add_alias(self, dest: str, *names: str) -> None:
        action = self._action(dest)
        for name in names:
            if name in self._option_string_actions:
                raise ValueError(f"alias {name} of --{dest} is taken by --{self._option_string_actions[name].dest}")
            action.option_strings.append(name)
            self._option_string_actions[name] = action

    def error(self, message: str):
        """argparse's error without the several-hundred-line usage of trl's configs; unknown flags get a hint."""
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            tokens = message[len(prefix):].split()
            message = prefix + " ".join(
                self._hint(token[2:].split("=", 1)[0].replace("-", "_"), token) if token.startswith("--") else token
                for token in tokens
            )
        self.exit(2, f"{self.prog}: error: {message}\n(`{self.prog} --help` lists every field)\n")

    def _hint(self, key: str, shown: str | None = None) -> str:
        shown = shown or key
        if key in self.renamed:
            return f"{shown} (now {self.renamed[key]})"
        close = difflib.get_close_matches(key, self.owner, n=1)
        return f"{shown} (did you mean {close[0]}?)" if close else shown

    # -- layers --------------------------------------------------------------------------------

    def layer(self, values: Mapping[str, Any], source: str, explicit: bool = True) -> None:
        """Values above every earlier layer (and below the flags); ``explicit``: they count as set by the user."""
        values = dict(values)
        unknown = [key for key in values if key not in self.owner]
        if unknown:
            hints = [self._hint(key) for key in unknown]
            raise ConfigError(f"{source}: unknown field(s): {', '.join(hints)}; `{self.prog} --help` lists them")
        self.set_defaults_with_config(**values)
        if explicit:
            self.explicit.update({key: source for key in values})

    def parse(self, argv: Iterable[str] = (), values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Flags (and the ``--config`` file they name) over the layers so far: the value of every field."""
        argv = [str(arg) for arg in argv]
        pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        pre.add_argument(*self.config_flags, dest="config")
        known, _ = pre.parse_known_args(argv)
        if known.config:
            from_file = read_yaml(known.config)
            env = from_file.pop("env", None)  # trl's convention: environment variables for the run
            if env is not None:
                if not isinstance(env, dict):
                    raise ConfigError(f"{known.config}: `env` must be a mapping of variable: value")
                os.environ.update({str(key): str(value) for key, value in env.items()})
            self.layer(from_file, str(known.config))
        if values:
            self.layer(values, "values passed in code")
        namespace = self.parse_args(argv)
        for token in argv:
            action = self._option_string_actions.get(token.split("=", 1)[0]) if token.startswith("--") else None
            if action is not None and action.dest != "config":
                self.explicit[action.dest] = COMMAND_LINE
        parsed = vars(namespace)
        parsed.pop("config", None)
        return parsed


class DescriptionAndDefaultsFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the description's line breaks and shows each field's default."""


LayeredParser = LayeredParserMixin  # the type to annotate with; instances come from make_layered_parser


def build(dtype: type, values: Mapping[str, Any]) -> Any:
    """An instance of ``dtype`` from the values of its fields (its own defaults for the others)."""
    return dtype(**{f.name: values[f.name] for f in dataclasses.fields(dtype) if f.init and f.name in values})

