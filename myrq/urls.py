"""URL helpers shared by configuration, brokers and logs (no backend imports)."""

from __future__ import annotations

from urllib.parse import unquote_plus, urlsplit, urlunsplit


def scheme_of(url: str) -> str:
    """The lower-cased scheme of ``url`` (``""`` when it has none)."""
    return url.partition("://")[0].lower() if "://" in url else ""


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe for logs.

    Both places a password can be given are covered: the user info
    (``redis://user:password@host``) and query parameters such as
    ``?password=...`` or ``?ssl_password=...``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        query = "&".join(
            f"{name}=***" if "password" in unquote_plus(name).lower() and sep else item
            for item in query.split("&")
            for name, sep, _ in [item.partition("=")]
        )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
