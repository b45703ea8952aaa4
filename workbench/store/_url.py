"""Where a store is: a SQLite file (a path, or ``sqlite:///path``) or a PostgreSQL database URL.

Owns telling the two apart, and keeping a URL's password out of everything a person or a
recording sees: :class:`DatabaseURL` prints, reprs and formats with the password masked, and
only :attr:`DatabaseURL.secret` (passed to the driver, never to a message) holds it. It does
not open anything (``_sqlite``, ``_postgres``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from workbench.exceptions import StoreError

__all__ = ["DatabaseURL", "StoreLocation", "mask_secrets", "parse_location"]

_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
# ``Path("postgresql://u@h/db")`` collapses the double slash: a --db option typed as a path
# hands back "postgresql:/u@h/db", which is still recognised (and restored) here.
_URL = re.compile(r"^(postgres(?:ql)?(?:\+psycopg)?):(/{1,3})(.*)$", re.DOTALL)


class DatabaseURL:
    """A PostgreSQL URL whose password shows as ``***`` wherever it is printed.

    Path-like enough for the callers that treat a store location as a path (``exists()``,
    ``resolve()``, ``expanduser()``, ``str()``): a database is not a file to look for.
    """

    __slots__ = ("_secret", "password")

    def __init__(self, url: str) -> None:
        self._secret = url
        self.password = unquote(urlsplit(url).password or "") or None

    @property
    def secret(self) -> str:
        """The URL as given, password included: for the driver only."""
        return self._secret

    @property
    def conninfo(self) -> str:
        """What psycopg connects with (libpq knows no ``postgresql+psycopg`` scheme)."""
        scheme, _, rest = self._secret.partition("://")
        return "postgresql://" + rest if scheme != "postgresql" else self._secret

    def __str__(self) -> str:
        return mask_secrets(self._secret, self.password)

    def __repr__(self) -> str:
        return f"DatabaseURL({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatabaseURL) and other._secret == self._secret

    def __hash__(self) -> int:
        return hash(self._secret)

    def __fspath__(self) -> str:
        # os.path.abspath(store.path) of a child process's handover keeps working and passes
        # the URL whole; it is never a message.
        return self._secret

    def exists(self) -> bool:
        return True  # whether the database is there is the server's answer, given on open

    def resolve(self) -> DatabaseURL:
        return self

    def expanduser(self) -> DatabaseURL:
        return self

    def is_dir(self) -> bool:
        return False

    @property
    def name(self) -> str:
        return urlsplit(self._secret).path.lstrip("/") or "postgres"


def mask_secrets(text: str, password: str | None) -> str:
    """``text`` with the URL password (and any ``user:password@``) shown as ``***``."""
    if password:
        text = text.replace(password, "***")
    return re.sub(r"(postgres(?:ql)?(?:\+psycopg)?://[^:/@\s]*):[^@/\s]*@", r"\1:***@", text)


class StoreLocation:
    """A parsed store location: ``backend`` is ``"sqlite"`` (``path``) or ``"postgresql"``."""

    __slots__ = ("backend", "path")

    def __init__(self, backend: str, path: Path | DatabaseURL) -> None:
        self.backend = backend
        self.path = path

    def __str__(self) -> str:
        return str(self.path)


def _restored(value: str) -> str | None:
    match = _URL.match(value)
    if match is None:
        return None
    scheme, slashes, rest = match.groups()
    if len(slashes) == 1:  # collapsed by Path: a netloc had a slash after it
        before_query = rest.split("?", 1)[0]
        slashes = "//" if "/" in before_query else "///"
    return f"{scheme}:{slashes}{rest}"


def parse_location(value: str | os.PathLike[str]) -> StoreLocation:
    """A path or ``sqlite:///path`` → SQLite; ``postgresql://…`` → PostgreSQL; else refused."""
    if isinstance(value, DatabaseURL):
        return StoreLocation("postgresql", value)
    text = os.fspath(value)
    url = _restored(text)
    if url is not None:
        return StoreLocation("postgresql", DatabaseURL(url))
    if text.startswith("sqlite:"):
        rest = text[len("sqlite:") :]
        if not rest.startswith("//"):
            raise StoreError(
                f"store URL {text!r} is not a SQLite URL; write sqlite:///relative/path.db or "
                f"sqlite:////absolute/path.db (or give the path alone)"
            )
        return StoreLocation("sqlite", Path(rest[3:] if rest.startswith("///") else rest[2:]))
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", text)
    if scheme is not None:
        shown = mask_secrets(text, unquote(urlsplit(text).password or "") or None)
        raise StoreError(
            f"store URL {shown!r} has scheme {scheme.group(1)!r}; a store is a file path, "
            f"sqlite:///path, or postgresql://user:password@host:port/database"
        )
    return StoreLocation("sqlite", Path(text).expanduser())
