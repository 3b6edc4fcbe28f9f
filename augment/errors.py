"""Errors a user can fix. The CLI prints them as one line, without a traceback."""

from manifests import ManifestError


class SourceError(Exception):
    """A source dataset root is missing, laid out wrongly, or holds unreadable audio."""


class ConfigError(Exception):
    """A render config or command-line value is out of range or unknown."""


USER_ERRORS: tuple[type[Exception], ...] = (SourceError, ConfigError, ManifestError)
