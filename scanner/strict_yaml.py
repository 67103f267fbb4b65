"""YAML for files people write by hand (inventories, waivers): PyYAML's safe loader,
with a key repeated in one mapping reported as an error instead of the last one
silently winning (a duplicated `trust:` must not quietly replace the first).

Built for large files (an inventory of 100,000 targets):

- **libyaml does the parsing** when PyYAML has it (``yaml.__with_libyaml__``), the pure
  Python parser otherwise. Either way the composer, the constructor and the resolver
  are PyYAML's Python ones, so both give the same data and the same duplicate-key,
  tag and alias errors; only the wording of syntax errors differs (libyaml: "did not
  find expected key"; PyYAML: "expected <block end>, but found ...").
- **Syntax errors first.** With libyaml the whole stream is parsed once before any
  node is built, the events thrown away in C (``raw_parse``), so a syntax error on
  the last line of a 50 MB file is reported in about a second instead of after
  composing the whole file. The Python parser is too slow to read a file twice; it
  reads the rest of the stream only when an entry fails to compose or construct, so
  that a later syntax error is still the one reported, as with libyaml.
- **Entries are constructed as they are composed.** Each entry of a list one level
  below the root (the ``targets:`` and ``waivers:`` entries) is turned into plain
  data as soon as it is composed, and its nodes (each holding two marks) are
  dropped; PyYAML would otherwise hold the node graph of the whole file, a few
  hundred bytes a scalar, until the end. A list with an anchor or an explicit tag
  is composed the usual way, so aliases to it and ``!!omap``/``!!pairs`` keep their
  meaning.

Errors are PyYAML's exception types with their marks (``MarkedYAMLError``), so
callers report file, line and column as before. Merge keys (``<<: *defaults``) are
refused ("could not determine a constructor for the tag ...merge"), as they were
before this loader streamed.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import IO, Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, SequenceNode

from mtls_audit.scanner.model.text import show

_SEQUENCE_TAG = "tag:yaml.org,2002:seq"
# Not a tag anyone can use: a user writing it gets the usual "could not determine a
# constructor" error (see _construct_entry).
_CONSTRUCTED_TAG = "tag:mtls-audit.invalid,2025:constructed"


class _Constructed:
    """Stands in a top-level list for an entry already turned into data."""

    __slots__ = ("value",)
    tag = _CONSTRUCTED_TAG
    start_mark = None

    def __init__(self, value: Any) -> None:
        self.value = value


class _StrictStreaming(Composer, SafeConstructor):
    """The composer and constructor half of the loaders below; the parser half is
    libyaml's ``CParser`` or PyYAML's Python ``Reader``/``Scanner``/``Parser``."""

    _source: str | bytes
    _depth: int
    _entries_may_stream: bool

    def _start(self, source: str | bytes) -> None:
        self._source = source
        self._depth = 0  # of the node being composed: the root is 1
        self._entries_may_stream = False  # for the innermost list being composed
        # The line (1-based) of each streamed entry, in order: in an inventory, the
        # targets' lines (SARIF points at them).
        self.entry_lines: list[int] = []

    def _check_syntax(self) -> None:
        """Raise the stream's first syntax error, if any, before anything is composed."""

    def _check_syntax_after_error(self) -> None:
        """An entry failed to compose or construct: raise instead a syntax error later in
        the stream, if any, as a syntax pass before composing would have."""

    def get_single_node(self) -> Node | None:
        self._check_syntax()
        try:
            return super().get_single_node()
        except (ComposerError, ConstructorError, ValueError):
            self._check_syntax_after_error()
            raise

    def compose_sequence_node(self, anchor: Any) -> SequenceNode:
        outer = self._entries_may_stream
        self._entries_may_stream = anchor is None
        try:
            return super().compose_sequence_node(anchor)
        finally:
            self._entries_may_stream = outer

    def compose_node(self, parent: Node | None, index: int) -> Any:
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if (
            self._depth == 2  # node is an entry of a list one level below the root
            and self._entries_may_stream
            and isinstance(parent, SequenceNode)
            and parent.tag == _SEQUENCE_TAG
        ):
            self.entry_lines.append(node.start_mark.line + 1 if node is not None else 0)
            return _Constructed(self.construct_document(node))
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if isinstance(node, MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # the base class reports unhashable keys
                if key in seen and key != "<<":
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {show(key)}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def entry_lines(loader: Any) -> list[int]:
    """The line (1-based) of each entry of the document's top-level lists, in order."""
    assert isinstance(loader, _StrictStreaming)  # one of this module's loaders
    return loader.entry_lines


def _construct_entry(loader: Any, node: Any) -> Any:
    if isinstance(node, _Constructed):
        return node.value
    return loader.construct_undefined(node)


_StrictStreaming.add_constructor(_CONSTRUCTED_TAG, _construct_entry)


def _text_of(stream: str | bytes | IO[str] | IO[bytes]) -> str | bytes:
    return stream if isinstance(stream, str | bytes) else stream.read()


class PyStrictSafeLoader(_StrictStreaming, yaml.SafeLoader):
    """The strict loader on PyYAML's pure Python parser (used when libyaml is missing)."""

    def __init__(self, stream: str | bytes | IO[str] | IO[bytes]) -> None:
        source = _text_of(stream)
        yaml.SafeLoader.__init__(self, source)
        self._start(source)

    def _check_syntax_after_error(self) -> None:
        # A syntax pass first would double the time of this (slow) parser; reading the
        # rest of the stream only when there is an error gives the same precedence.
        while self.check_event():
            self.get_event()


def _without_timestamps(resolvers: dict[Any, list[tuple[str, Any]]]) -> dict[Any, list[tuple[str, Any]]]:
    return {
        first: [(tag, regexp) for tag, regexp in entries if tag != "tag:yaml.org,2002:timestamp"]
        for first, entries in resolvers.items()
    }


class PyStrictSafeLoaderWithoutDates(PyStrictSafeLoader):
    yaml_implicit_resolvers = _without_timestamps(yaml.SafeLoader.yaml_implicit_resolvers)


# The loaders to use: on libyaml's parser when PyYAML has it, else on the Python one.
# Without dates, dates stay strings, so a bad one is reported with its entry and field
# by the caller instead of failing inside the YAML library.
StrictSafeLoader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = PyStrictSafeLoader
StrictSafeLoaderWithoutDates: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = PyStrictSafeLoaderWithoutDates

if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class CStrictSafeLoader(_StrictStreaming, yaml.CSafeLoader):
        """The strict loader on libyaml's parser."""

        def __init__(self, stream: str | bytes | IO[str] | IO[bytes]) -> None:
            source = _text_of(stream)
            yaml.CSafeLoader.__init__(self, source)
            Composer.__init__(self)
            self._start(source)

        def _check_syntax(self) -> None:
            CParser(self._source).raw_parse()

    class CStrictSafeLoaderWithoutDates(CStrictSafeLoader):
        yaml_implicit_resolvers = _without_timestamps(yaml.CSafeLoader.yaml_implicit_resolvers)

    StrictSafeLoader = CStrictSafeLoader
    StrictSafeLoaderWithoutDates = CStrictSafeLoaderWithoutDates
