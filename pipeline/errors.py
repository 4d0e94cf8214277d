"""Errors the user can fix: a stage prints them as one message and exits non-zero."""

from __future__ import annotations

import sys
from collections.abc import Callable


class PipelineError(Exception):
    """A problem in the user's config, data or models: the message says what, where and how
    to fix it."""


class ConfigError(PipelineError):
    pass


class DataError(PipelineError):
    pass


class SourceError(PipelineError):
    pass


def run_cli(main: Callable[[], None]) -> None:
    """Run a command-line entry point, turning a PipelineError into one clear line."""
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
