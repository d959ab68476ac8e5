"""The HTTP service: a FastAPI app over the Engine, and its search page.

>>> from hybrid_search.api import ApiSettings, create_app       # doctest: +SKIP
>>> app = create_app(ApiSettings(store_uri="kb.db"))             # doctest: +SKIP

Importing this package does nothing else: the names are resolved on first use,
so ``hybrid-search --help`` does not pay for importing FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ApiSettings", "create_app"]

if TYPE_CHECKING:
    from .app import create_app
    from .settings import ApiSettings


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "ApiSettings":
        from .settings import ApiSettings

        return ApiSettings
    raise AttributeError(f"module 'hybrid_search.api' has no attribute {name!r}")
