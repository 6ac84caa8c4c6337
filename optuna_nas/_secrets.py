"""Storage and tracking URLs as they may be shown: with their password masked."""

from __future__ import annotations

import urllib.parse

MASK = "***"


def mask_url(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part replaced by ``***``.

    Example:
        >>> mask_url("postgresql://nas:s3cret@db:5432/studies")
        'postgresql://nas:***@db:5432/studies'
        >>> mask_url("sqlite:///nas.db")
        'sqlite:///nas.db'
    """
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{name}:{MASK}@{host}"))


def mask_secrets(text: str, url: str) -> str:
    """``text`` (an error message, say) with ``url``'s password masked wherever it appears."""
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:
        return text
    text = text.replace(url, mask_url(url))
    if password:
        text = text.replace(urllib.parse.unquote(password), MASK).replace(password, MASK)
    return text
