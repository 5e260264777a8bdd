"""Exceptions of the image tool.

OciError
 +-- SpecError        the JSON spec is malformed or names a missing input
 +-- DebFormatError   a ``.deb`` file cannot be read
 +-- EngineError      no container engine could load the image
"""

from __future__ import annotations

__all__ = ["DebFormatError", "EngineError", "OciError", "SpecError"]


class OciError(Exception):
    """Base class of every error raised by the image tool."""


class SpecError(OciError):
    """The image spec is malformed or refers to inputs that do not exist."""


class DebFormatError(OciError):
    """A Debian package is not a readable ar archive with a data tarball."""


class EngineError(OciError):
    """No container engine answered, or the engine refused the image."""
