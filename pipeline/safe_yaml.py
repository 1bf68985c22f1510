"""YAML from users' files, parsed within bounds: nesting depth and size with every alias expanded.

``yaml.safe_load`` constructs only plain data, but it still lets a few hundred bytes of anchors and
aliases stand for billions of values ("billion laughs"), and it nests as deep as the file does (the
composer recurses once per level: 100,000 ``[`` end in RecursionError). :func:`load_yaml` counts what
each node would be with its aliases written out while it composes the document, and refuses the
document as soon as a bound is passed, before anything is expanded.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline import limits
from pipeline.errors import InputError


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that counts nesting depth and expanded size while it composes.

    The expanded size of a document is its scalars' characters plus one per node, with an alias
    counted as the whole node it names; it is what a reader walking the data would meet.
    """

    def __init__(self, text: str, path: str | Path | None, depth_name: str, expanded_name: str) -> None:
        super().__init__(text)
        self._path, self._depth_name, self._expanded_name = path, depth_name, expanded_name
        self._depth = 0
        self._expanded = 0
        self._sizes: dict[int, int] = {}  # id(anchored node) -> its expanded size, once composed

    def _grow(self, amount: int, mark: yaml.Mark | None) -> None:
        self._expanded += amount
        where = f"expanded size at line {mark.line + 1}" if mark else "expanded size"
        limits.check(self._expanded, self._expanded_name, where, self._path, "characters")

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:  # noqa: D102
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None:
                size = self._sizes.get(id(node))
                if size is None:  # the alias lies inside the node it names
                    raise InputError(
                        f"YAML alias *{event.anchor} at line {event.start_mark.line + 1} refers to a value that "
                        "contains it",
                        self._path,
                    )
                self._grow(size, event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        limits.check(self._depth, self._depth_name, f"nesting at line {event.start_mark.line + 1}", self._path)
        before = self._expanded
        self._grow(1 + len(getattr(event, "value", None) or ""), event.start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if event.anchor is not None:
            self._sizes[id(node)] = self._expanded - before
        return node


def load_yaml(raw: bytes, path: str | Path | None, what: str, depth_name: str, expanded_name: str) -> object:
    """Parse one YAML document from ``raw`` (UTF-8) into plain data, within two bounds of :mod:`pipeline.limits`.

    ``depth_name`` bounds nested collections, ``expanded_name`` the document's size with aliases written
    out (:class:`_BoundedLoader`). Anything that is not a readable YAML document within the bounds is an
    :class:`InputError` naming ``path``; ``what`` says what the file is for ("codebook").
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{what} is not valid UTF-8", path) from None
    loader = None
    try:  # the reader checks the characters when the loader is made: a NUL is a ReaderError there
        loader = _BoundedLoader(text, path, depth_name, expanded_name)
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{what} is not valid YAML{where} ({type(exc).__name__})", path) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # a value the safe constructor can't build: an int past Python's digit limit, a date like 2001-13-45
        raise InputError(f"{what} holds a value YAML can't read ({type(exc).__name__})", path) from None
    finally:
        if loader is not None:
            loader.dispose()
