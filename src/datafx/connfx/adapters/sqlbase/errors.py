"""Error text helpers shared by the SQL adapters."""

from __future__ import annotations

from datafx.connfx.config import ConfigTarget

__all__ = ["text_without_password"]


def text_without_password(exc: BaseException, target: ConfigTarget) -> str:
    """Return ``str(exc)`` with the target's password, if any, replaced by ``***``."""
    text = str(exc)
    password = target.parsed().password if target.location else None
    return text.replace(password, "***") if password else text
