"""Rules for every path and name a manifest holds, checked before any tool touches a file.

A dataset can come from someone else, so its tables and dataset.json are untrusted input. Items
may be folders named after real songs (`Mr. So & So - Eyes`, MUSDB18-HQ's layout), so the rules
look at each path component, never at an id pattern: a component is not empty, not `.` or
`..`, does not start with a dot (hidden and temporary files are the writer's), and holds no
`/`, backslash or control character. A path is relative, made of such components, and ends in
an allowed extension.
"""

from __future__ import annotations

import stat
from collections.abc import Collection
from pathlib import Path, PurePosixPath

from manifests.errors import ManifestError

AUDIO_EXTENSIONS = frozenset({".wav", ".flac"})


def name_problem(name: object) -> str | None:
    """Why `name` cannot be one path component, or None if it can."""
    if not isinstance(name, str) or not name:
        return "is empty or not text"
    if name in (".", ".."):
        return "is . or .."
    if name.startswith("."):
        return "starts with a dot"
    if "/" in name or "\\" in name:
        return "contains a slash"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a control character"
    return None


def check_name(name: object, where: str) -> str:
    problem = name_problem(name)
    if problem is not None:
        raise ManifestError(f"{where}: {name!r} {problem}; it cannot name a file in a dataset")
    return name  # type: ignore[return-value]


def check_relative(path: object, where: str, extensions: Collection[str]) -> str:
    """`path` if it is a safe relative POSIX path inside the dataset with an allowed extension."""
    if not isinstance(path, str) or not path:
        raise ManifestError(f"{where}: path {path!r} is empty or not text")
    if path.startswith("/"):
        raise ManifestError(f"{where}: path {path!r} is absolute; manifest paths are relative")
    for part in path.split("/"):
        problem = name_problem(part)
        if problem is not None:
            raise ManifestError(
                f"{where}: path {path!r} has a component {part!r} that {problem}; "
                "manifest paths stay inside the dataset"
            )
    suffix = PurePosixPath(path).suffix.lower()
    if suffix not in extensions:
        raise ManifestError(
            f"{where}: path {path!r} must end in one of {sorted(extensions)}, not {suffix!r}"
        )
    return path


def confined(root: Path, relative: str) -> Path:
    """`root / relative`, refused if a symbolic link on the way leads outside `root`.

    `check_relative` rules out `..` and absolute paths in the text; a dataset that arrives as a
    folder can still hold a link (`train/0000001 -> /home/you`), so the path is also resolved
    before any tool reads, copies or links it. Links that stay inside the dataset are fine.
    """
    path = root / relative
    if not path.resolve().is_relative_to(root.resolve()):
        raise ManifestError(
            f"{path} leads outside the dataset {root} through a symbolic link; a dataset's "
            "files lie inside its folder: replace the link with the file"
        )
    return path


def check_real_folder(path: Path, what: str) -> None:
    """Refuse `path` when it exists as anything but a real folder: a symbolic link (a writer
    would read, write and remove through it, outside the dataset) or a file. A missing one is
    fine: the writer makes it."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        return
    kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a folder"
    raise ManifestError(
        f"{path} ({what}) is {kind}; a dataset's files lie inside its folder and msaug never "
        "writes through a link: replace it with a real folder holding its files, or use a new "
        "--out folder"
    )
