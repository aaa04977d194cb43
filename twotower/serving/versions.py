"""The serving directory on disk: which models and versions it holds, and which of them may be loaded.

Layout (TF Serving's): ``serving_dir/<model>/<version>/saved_model.pb``. A version is
a directory named with ASCII digits only; any other name (``tmp``, ``²``, Arabic-Indic
digits that ``int()`` would read as a number) is ignored with one warning. A version
reached through a symlink that leads outside the serving directory is refused (one
warning) unless ``follow_symlinks``. No TensorFlow here: only the file system.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

log = logging.getLogger(__name__)

Fingerprint = Tuple[int, int, int]


def is_version_name(name: str) -> bool:
    """True for a version directory name: ASCII digits only, below 2**63 (``"²"`` or ``"١"`` are not versions)."""
    return name.isascii() and name.isdigit() and len(name) < 19


def escaping_link(path: str, root: str) -> Optional[str]:
    """Returns ``path`` or the first symlink under it whose target lies outside ``root``; None if all stay inside."""
    inside = os.path.realpath(root) + os.sep
    if not os.path.realpath(path).startswith(inside):
        return path
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            entry = os.path.join(parent, name)
            if os.path.islink(entry) and not os.path.realpath(entry).startswith(inside):
                return entry
    return None


def fingerprint(path: str) -> Optional[Fingerprint]:
    """Returns (files, bytes, newest mtime ns) under ``path``; None while there is no saved_model.pb."""
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        return None
    files = size = newest = 0
    try:
        for root, _, names in os.walk(path):
            for name in names:
                st = os.stat(os.path.join(root, name))
                files, size, newest = files + 1, size + st.st_size, max(newest, st.st_mtime_ns)
    except OSError:  # a file vanished mid-walk: still being written
        return None
    return files, size, newest


class ServingDir:
    """Lists the models and the loadable version directories of one serving directory."""

    def __init__(self, root: str, model_names: Sequence[str] = (), follow_symlinks: bool = False):
        """``model_names`` empty: every model directory under ``root``."""
        self.root, self.model_names, self.follow_symlinks = root, tuple(model_names), follow_symlinks
        self._warned: set = set()  # names and links already warned about: one warning each

    def models(self) -> List[str]:
        """Returns the model names to serve: the named ones, or every directory under the root."""
        if self.model_names:
            return list(self.model_names)
        if not os.path.isdir(self.root):
            return []
        return sorted(
            m for m in os.listdir(self.root) if not m.startswith(".") and os.path.isdir(os.path.join(self.root, m))
        )

    def versions(self, model: str) -> Dict[int, str]:
        """Returns {version: path} of ``model``'s version directories that may be loaded."""
        model_dir = os.path.join(self.root, model)
        if not os.path.isdir(model_dir):
            return {}
        versions = {}
        for name in os.listdir(model_dir):
            path = os.path.join(model_dir, name)
            if not is_version_name(name):
                self._warn_once(path, "%s: not a version (a version is named with ASCII digits only); ignored", path)
                continue
            link = None if self.follow_symlinks else escaping_link(path, self.root)
            if link is not None:
                self._warn_once(
                    link,
                    "%s: symlink leads outside the serving directory %s; version %s of %s not loaded "
                    "(twotower serve --follow-symlinks allows it)",
                    link,
                    self.root,
                    name,
                    model,
                )
                continue
            versions[int(name)] = path
        return versions

    def relative(self, text: str) -> str:
        """Returns ``text`` with the root's absolute paths made relative to it (the status API shows no host paths)."""
        for root in sorted({os.path.abspath(self.root), os.path.realpath(self.root)}, key=len, reverse=True):
            text = text.replace(root + os.sep, "").replace(root, ".")
        return text

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)
