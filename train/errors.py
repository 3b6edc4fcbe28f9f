"""Errors a user can fix. `mstrain` prints them as one line, without a traceback."""

from manifests import ManifestError


class TrainError(Exception):
    """A run folder, checkpoint, song, MUSDB root or option that cannot be used as given.

    The message is one line naming the path or option and what to do instead.
    """


USER_ERRORS: tuple[type[Exception], ...] = (TrainError, ManifestError)
