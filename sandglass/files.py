"""File permissions for files written under a temporary name and renamed into place."""

from __future__ import annotations

import os


def regular_file_mode() -> int:
    """The mode ``open()`` would give a new file (0o666 less the umask); ``mkstemp`` files start at 0o600."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask
