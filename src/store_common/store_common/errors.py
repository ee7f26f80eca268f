"""Errors of configuration files that name the file, the field path and what is wrong."""
from __future__ import annotations

import pathlib


class FileFieldError(ValueError):
    """``str()`` reads ``file: field.path: what is wrong`` (or ``file: what`` without a field)."""

    def __init__(self, file: str | pathlib.Path, field_path: str, message: str):
        self.file = str(file)
        self.field_path = field_path
        self.message = message
        super().__init__(f'{self.file}: {field_path}: {message}' if field_path
                         else f'{self.file}: {message}')
