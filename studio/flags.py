"""Command lines from one hyper-parameter dataclass (CleanRL style): every field becomes a flag with its default.

Shared by ``train.py``'s agents so ``--help`` looks the same everywhere: ``--flag-name`` (underscores become
dashes), the field's ``help`` metadata, and ``(default: …)``. Booleans are ``--flag`` / ``--no-flag``.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TypeVar

T = TypeVar("T")


def parse_args(cls: type[T], argv: list[str] | None = None, prog: str | None = None, description: str | None = None) -> T:
    """Parse ``argv`` into an instance of the dataclass ``cls``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        flag = "--" + f.name.replace("_", "-")
        text = f"{f.metadata.get('help', '')} (default: {default!r})"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=text, metavar=f.name.upper())
    return cls(**vars(parser.parse_args(argv)))
