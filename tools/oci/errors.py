"""Exceptions of the image tool.

OciError
 +-- SpecError        the JSON spec is malformed or names a missing input
 +-- DebFormatError   a ``.deb`` file cannot be read
 +-- EngineError      no container engine could load the image
 +-- ImageRefError    an image repository or reference cannot be parsed
 +-- RegistryError    a registry answered with an error (``status``, ``codes``)
      +-- AuthError   the registry refused the credentials, or none were found
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "DebFormatError",
    "EngineError",
    "ImageRefError",
    "OciError",
    "RegistryError",
    "SpecError",
]


class OciError(Exception):
    """Base class of every error raised by the image tool."""


class SpecError(OciError):
    """The image spec is malformed or refers to inputs that do not exist."""


class DebFormatError(OciError):
    """A Debian package is not a readable ar archive with a data tarball."""


class EngineError(OciError):
    """No container engine answered, or the engine refused the image."""


class ImageRefError(OciError):
    """An image repository (``registry.example.com/conveyor/api``) or tag is malformed."""


class RegistryError(OciError):
    """The registry answered a request with an unexpected status.

    ``status`` is the HTTP status (0 when the registry could not be reached) and ``codes`` the
    error codes of the distribution API's JSON error body (``BLOB_UNKNOWN``, ``DENIED``, ...).
    """

    def __init__(self, message: str, status: int = 0, codes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes


class AuthError(RegistryError):
    """The registry wants credentials that were not given, or refused the ones given."""
