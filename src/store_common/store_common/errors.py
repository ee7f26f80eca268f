"""Errors of configuration files that name the file, the field path and what is wrong."""
from __future__ import annotations

import pathlib


class FileFieldError(ValueError):
    """``str()`` reads ``file: field.path: what is wrong``; the field is left out when there is
    none, and the file when the document was not read from one (built in memory)."""

    def __init__(self, file: str | pathlib.Path, field_path: str, message: str):
        self.file = str(file)
        self.field_path = field_path
        self.message = message
        where = f'{self.file}: ' if self.file else ''
        super().__init__(f'{where}{field_path}: {message}' if field_path
                         else f'{where}{message}')
