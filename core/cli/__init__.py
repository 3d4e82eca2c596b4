"""The command line: ``python -m core`` (or ``dotmap``) and its sub-commands."""

from core.cli.commands import main

__all__ = ["main"]
