"""Strict YAML reading for configuration files (no rclpy).

:func:`load_file` reads a file the way configuration must be read when its author can typo:

* a duplicate key in a mapping is an error naming the key and both lines (PyYAML keeps the last
  one silently); keys brought in by a merge (``<<: *anchor``) may still be overridden;
* nesting deeper than :data:`MAX_DEPTH` is an error at the line where it happens (PyYAML's
  composer recurses and would end in a RecursionError);
* bytes that are not UTF-8 are an error naming the byte offset and line;
* every mapping's line and its keys' lines are recorded, so a validator can name the line of an
  unknown key (:meth:`Document.key_line`).

Every problem is a :class:`YamlError` whose ``str()`` reads ``file: line N, column M: what``
(``file: invalid YAML at line N, column M: what`` for a syntax error).
"""
from __future__ import annotations

import pathlib
from typing import Any

import yaml

MAX_DEPTH = 64          # nesting levels (mappings and lists) a configuration file may use
MERGE_TAG = 'tag:yaml.org,2002:merge'


class YamlError(ValueError):
    """A file that is not valid (strict) YAML. ``line`` is 1-based, 0 when unknown."""

    def __init__(self, file: str, message: str, line: int = 0, column: int = 0,
                 syntax: bool = False):
        self.file, self.line, self.column, self.message = str(file), line, column, message
        self.syntax = syntax
        super().__init__(f'{self.file}: {self.where_message()}')

    def where_message(self) -> str:
        """The message with its position, without the file name."""
        where = f'line {self.line}' + (f', column {self.column}' if self.column else '')
        if self.syntax:
            return f'invalid YAML at {where}: {self.message}' if self.line else (
                f'invalid YAML: {self.message}')
        return f'{where}: {self.message}' if self.line else self.message


class _Problem(yaml.MarkedYAMLError):
    pass


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and deep nesting, and records line numbers."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        # id(mapping) -> (line of the mapping, {key: line of the key}); _keep holds the mappings
        # so that their ids stay theirs while this loader lives
        self.lines: dict[int, tuple[int, dict]] = {}
        self._keep: list[dict] = []

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Problem(None, None, f'nested deeper than {MAX_DEPTH} levels',
                               self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_strict_map(self, node):
        data: dict = {}
        yield data
        key_lines: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = key_lines.get(key)
            except TypeError:
                raise _Problem('while constructing a mapping', node.start_mark,
                               'found an unhashable key', key_node.start_mark) from None
            if first is not None:
                raise _Problem(None, None, f'duplicate key {key!r} (first at line {first})',
                               key_node.start_mark)
            key_lines[key] = key_node.start_mark.line + 1
        data.update(self.construct_mapping(node))
        self.lines[id(data)] = (node.start_mark.line + 1, key_lines)
        self._keep.append(data)


StrictLoader.add_constructor('tag:yaml.org,2002:map', StrictLoader.construct_strict_map)


class Document:
    """A loaded file: ``data`` (plain dicts, lists and scalars) and where its keys were."""

    def __init__(self, file: str, data: Any, lines: dict[int, tuple[int, dict]], keep: list):
        self.file, self.data = file, data
        self._lines, self._keep = lines, keep

    def line(self, mapping: dict) -> int:
        """1-based line of a mapping of this document; 0 if unknown."""
        return self._lines.get(id(mapping), (0, {}))[0]

    def key_line(self, mapping: dict, key: Any) -> int:
        """1-based line of ``key`` in a mapping of this document; 0 if unknown."""
        return self._lines.get(id(mapping), (0, {}))[1].get(key, 0)


def decode_utf8(file: str, data: bytes) -> str:
    """The text of ``data``; a YamlError naming the byte offset and line if it is not UTF-8."""
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as exc:
        line = data.count(b'\n', 0, exc.start) + 1
        raise YamlError(file, f'not UTF-8: byte 0x{data[exc.start]:02x} at byte offset '
                              f'{exc.start} ({exc.reason})', line) from None


def loads(text: str, file: str = '<string>') -> Document:
    """Parse one YAML document strictly (see the module docstring)."""
    loader = StrictLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or 'invalid YAML'
        syntax = not isinstance(exc, _Problem)
        if mark is None:
            raise YamlError(file, problem, syntax=syntax) from None
        raise YamlError(file, problem, mark.line + 1, mark.column + 1, syntax=syntax) from None
    except yaml.YAMLError as exc:
        raise YamlError(file, str(exc), syntax=True) from None
    except RecursionError:
        raise YamlError(file, f'nested too deeply (at most {MAX_DEPTH} levels)') from None
    finally:
        loader.dispose()
    return Document(file, data, loader.lines, loader._keep)


def load_file(path: str | pathlib.Path) -> Document:
    """Read and parse ``path`` strictly. OSError (missing, unreadable) is left to the caller."""
    path = pathlib.Path(path)
    return loads(decode_utf8(str(path), path.read_bytes()), str(path))
