"""One exception type for everything a user can fix about a dataset on disk."""


class ManifestError(Exception):
    """A dataset is missing, incomplete, of an unknown schema, or fails a check.

    The message is one line that names the path and the fix; CLIs print it without a traceback.
    """
