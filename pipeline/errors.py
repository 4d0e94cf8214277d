"""Errors the user can fix: a stage prints them as one message and exits non-zero."""

from __future__ import annotations

import logging
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
    """Run a command-line entry point: log to stderr, and turn a PipelineError into one
    clear line and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
