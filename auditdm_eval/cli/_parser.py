"""The argument parser every command starts from."""

import argparse

from ._help import HELP


def command_parser(name: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=f"auditdm {name}", description=HELP[name])


def csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
