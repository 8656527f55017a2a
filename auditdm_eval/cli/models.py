"""``auditdm models``: the registered model names."""

from __future__ import annotations

from ._parser import command_parser

NO_LIBRARIES = True  # lists names: transformers and datasets are never imported


def main(argv: list[str]) -> int:
    command_parser("models").parse_args(argv)
    from model_adapters import list_models

    for spec in list_models():
        print(f"{spec.name:24s} {spec.path or '(built locally)':40s} {spec.description}")
    return 0
