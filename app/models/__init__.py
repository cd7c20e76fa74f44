"""All SQLAlchemy models. Every module in this package is imported, so Alembic sees one metadata
and a new table needs only its own file here."""

import importlib
import pkgutil

from app.models.base import Base

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Base"]
