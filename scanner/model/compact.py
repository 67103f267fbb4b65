"""Saying a fact once: the encodings the JSON report uses inside a target.

Each is generic over keys and reversible, and the writers use one only where
reading it back gives exactly what was written (``same``):

- ``like``: an entry of a list (a probe, an identity-matrix row, an object in an
  evidence list: ``lists_like``) may name an earlier entry of the list and say only
  how it differs from it: the keys whose values changed (a dict value by what
  changed in it) and null for each key it lacks.
- ``command_parts``: the shell commands of a target share long runs of arguments
  (the request piped in, the address and server name, the identity's files); each
  run is written once and the commands name it by its index.
- ``certificate_references``: an evidence object that describes a certificate of the
  target's chain (its ``subject`` or ``sha256`` is that certificate's) gives its
  certificate fields as the certificate's position in the chain.
- ``TextTable``: the sentences findings repeat across a fleet (summaries,
  remediations), each written once in the report and named by its index.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

LIKE = "like"


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values: ``True`` is not ``1`` and ``1`` is not ``1.0``."""
    if a is b:
        return True
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is dict:
        return bool(a.keys() == b.keys()) and all(same(a[key], b[key]) for key in a)
    if kind is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _size(value: Any) -> int:
    return len(_ENCODER.encode(value))


# -- like: an entry as the difference from an earlier one ---------------------------


def difference(value: dict[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """What ``value`` says that ``base`` does not: each key whose value differs (a
    dict that was a dict, by what differs in it) and null for each key it lacks."""
    change: dict[str, Any] = {}
    for key, item in value.items():
        if key not in base:
            change[key] = item
        elif type(item) is not type(base[key]) or item != base[key]:  # like_encode checks the rest
            both = isinstance(item, dict) and isinstance(base[key], dict)
            change[key] = difference(item, base[key]) if both else item
    change.update({key: None for key in base if key not in value})
    return change


def patched(base: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``change`` applied: the inverse of ``difference``."""
    result = dict(base)
    for key, item in change.items():
        if item is None:
            result.pop(key, None)
        elif isinstance(item, dict) and isinstance(result.get(key), dict):
            result[key] = patched(result[key], item)
        else:
            result[key] = item
    return result


def like_encode(
    entries: Sequence[dict[str, Any]],
    alone: Callable[[dict[str, Any]], dict[str, Any]] = dict,
    name: str | None = None,
    window: int = 3,
) -> list[dict[str, Any]]:
    """Each entry as the shortest of: ``alone(entry)``, or ``{name: ..., "like": j,
    ...difference}`` from one of the ``window`` entries before it. An entry keeps
    its ``name`` key (a probe's id) either way; ``like`` is used only where
    ``like_decode`` gives the entry back exactly."""
    written: list[dict[str, Any]] = []
    for number, entry in enumerate(entries):
        best = alone(entry)
        best_size = _size(best)
        if LIKE in entry or (name is not None and name not in entry):
            written.append(best)
            continue
        kept = {name: entry[name]} if name is not None else {}
        candidates = []
        for earlier in range(max(0, number - window), number):
            change = difference({k: v for k, v in entry.items() if k != name}, entries[earlier])
            change.pop(name, None)  # type: ignore[arg-type]
            candidate = kept | {LIKE: earlier} | change
            candidates.append((_size(candidate), earlier, candidate, change))
        for size, earlier, candidate, change in sorted(candidates, key=lambda c: c[:2]):
            if size >= best_size:
                break
            if same(patched(entries[earlier], change) | kept, entry):
                best = candidate
                break
        written.append(best)
    return written


def like_decode(
    entries: Sequence[Mapping[str, Any]],
    alone: Callable[[Mapping[str, Any]], dict[str, Any]] = dict,
    name: str | None = None,
) -> list[dict[str, Any]]:
    """The entries ``like_encode`` wrote, whole again; an entry without ``like`` goes
    through ``alone``. Raises ValueError for a ``like`` that names no earlier entry."""
    read: list[dict[str, Any]] = []
    for number, entry in enumerate(entries):
        if LIKE not in entry:
            read.append(alone(entry))
            continue
        earlier = entry[LIKE]
        if type(earlier) is not int or not 0 <= earlier < number:
            raise ValueError(f"entry {number} is like {earlier!r}, which is no earlier entry")
        if name is not None and name not in entry:
            raise ValueError(f"entry {number} is like {earlier} but has no {name}")
        kept = {name: entry[name]} if name is not None else {}
        change = {key: value for key, value in entry.items() if key != LIKE and key != name}
        read.append(patched(read[earlier], change) | kept)
    return read


def lists_like(value: Any) -> Any:
    """``value`` with every list of objects in it ``like_encode``d (free-form data:
    evidence); ``lists_whole`` reads it back."""
    if isinstance(value, dict):
        return {key: lists_like(item) for key, item in value.items()}
    if not isinstance(value, list):
        return value
    if len(value) > 1 and all(isinstance(item, dict) for item in value):
        value = like_encode(value)
    return [lists_like(item) for item in value]


def lists_whole(value: Any) -> Any:
    """The inverse of ``lists_like``. A list whose ``like`` keys do not all name an
    earlier entry was not written by it (free-form data may have a key ``like``) and
    stays as it is."""
    if isinstance(value, dict):
        return {key: lists_whole(item) for key, item in value.items()}
    if not isinstance(value, list):
        return value
    items = [lists_whole(item) for item in value]
    likes = [item.get(LIKE) if isinstance(item, dict) else None for item in items]
    if any(like is not None for like in likes) and all(
        isinstance(item, dict) and (like is None or (type(like) is int and 0 <= like < number))
        for number, (item, like) in enumerate(zip(items, likes, strict=True))
    ):
        items = like_decode(items)
    return items


# -- command parts: runs of arguments written once per target -----------------------

# A command splits before each option ("... -connect a:1 -servername b -tls1_3"):
# rejoined with single spaces, the pieces give the command back byte for byte.
_OPTION = re.compile(r" (?=-)")
_MAX_PARTS = 16
_MIN_GAIN = 24  # bytes a part must save over writing its run in full


def command_parts(commands: Iterable[str]) -> tuple[list[str], dict[str, str | list[int | str]]]:
    """The runs of arguments that several of ``commands`` share, and each command as
    its pieces: strings, and ints naming a part (the command itself when it uses
    none). ``joined`` puts a command back together."""
    distinct = list(dict.fromkeys(commands))
    tokens: list[list[int | str]] = [list(_OPTION.split(command)) for command in distinct]
    parts: list[str] = []
    while len(parts) < _MAX_PARTS:
        # A run that two commands share is made of tokens that two commands have.
        shared = Counter(token for sequence in tokens for token in set(sequence) if isinstance(token, str))
        found: dict[tuple[str, ...], int] = {}  # in the order first met: ties go to the first
        for sequence in tokens:
            runs: dict[tuple[str, ...], None] = {}
            for start in range(len(sequence)):
                for end in range(start + 1, len(sequence) + 1):
                    token = sequence[end - 1]
                    if not isinstance(token, str) or shared[token] < 2:
                        break
                    runs[tuple(sequence[start:end])] = None  # type: ignore[arg-type]
            for run in runs:
                found[run] = found.get(run, 0) + 1
        best, best_gain = None, _MIN_GAIN
        for run, count in found.items():
            if count < 2:
                continue
            length = len(" ".join(run))
            gain = (count - 1) * length - 5 * count - 3
            if gain > best_gain:
                best, best_gain = run, gain
        if best is None:
            break
        for sequence in tokens:
            _replace(sequence, best, len(parts))
        parts.append(" ".join(best))
    encoded: dict[str, str | list[int | str]] = {}
    for command, sequence in zip(distinct, tokens, strict=True):
        pieces: list[int | str] = []
        for token in sequence:
            if isinstance(token, str) and pieces and isinstance(pieces[-1], str):
                pieces[-1] = f"{pieces[-1]} {token}"
            else:
                pieces.append(token)
        encoded[command] = pieces[0] if len(pieces) == 1 and isinstance(pieces[0], str) else pieces
        assert joined(encoded[command], parts) == command
    return parts, encoded


def _replace(sequence: list[int | str], run: tuple[str, ...], part: int) -> None:
    position = 0
    while position + len(run) <= len(sequence):
        if tuple(sequence[position : position + len(run)]) == run:
            sequence[position : position + len(run)] = [part]
        position += 1


def joined(command: str | Sequence[int | str], parts: Sequence[str]) -> str:
    """A command written by ``command_parts``, whole again. Raises ValueError for a
    part that is not there."""
    if isinstance(command, str):
        return command
    pieces = []
    for piece in command:
        if isinstance(piece, str):
            pieces.append(piece)
        elif type(piece) is int and 0 <= piece < len(parts):
            pieces.append(parts[piece])
        else:
            raise ValueError(f"a command names part {piece!r}, which is not in command_parts")
    return " ".join(pieces)


# -- certificates by their position in the target's chain ---------------------------

CERTIFICATE_FIELDS = ("subject", "issuer", "serial", "not_before", "not_after", "subject_alternative_names", "sha256")
_NAMING = ("subject", "sha256")  # the fields that say which certificate an object describes


def certificate_references(value: Any, chain: Sequence[Mapping[str, Any]]) -> Any:
    """``value`` with each object that describes a certificate of ``chain`` (by its
    subject or SHA-256) giving that certificate's fields as its position. An object
    with a number in a certificate field already is left as it is."""
    positions: dict[tuple[str, str], int] = {}
    for number, certificate in enumerate(chain):
        for key in _NAMING:
            if isinstance(certificate.get(key), str):
                positions.setdefault((key, certificate[key]), number)

    def referenced(item: Any) -> Any:
        if isinstance(item, list):
            return [referenced(x) for x in item]
        if not isinstance(item, dict):
            return item
        position = None
        if not any(type(item.get(key)) is int for key in CERTIFICATE_FIELDS):  # would read as positions
            position = next(
                (
                    positions[key, name]
                    for key in _NAMING
                    if isinstance(name := item.get(key), str) and (key, name) in positions
                ),
                None,
            )
        if position is None:
            return {key: referenced(x) for key, x in item.items()}
        certificate = chain[position]
        return {
            key: position if key in CERTIFICATE_FIELDS and same(x, certificate.get(key)) else referenced(x)
            for key, x in item.items()
        }

    return referenced(value)


def certificate_values(value: Any, chain: Sequence[Mapping[str, Any]]) -> Any:
    """The inverse of ``certificate_references``: in an object whose subject or
    SHA-256 is a position, every certificate field that is a position is that
    certificate's. Raises ValueError for a position not in the chain."""
    if isinstance(value, list):
        return [certificate_values(item, chain) for item in value]
    if not isinstance(value, dict):
        return value
    if not any(type(value.get(key)) is int for key in _NAMING):
        return {key: certificate_values(item, chain) for key, item in value.items()}
    result = {}
    for key, item in value.items():
        if key in CERTIFICATE_FIELDS and type(item) is int:
            if not 0 <= item < len(chain):
                raise ValueError(f"evidence names certificate {item} of a chain of {len(chain)}")
            result[key] = chain[item][key]
        else:
            result[key] = certificate_values(item, chain)
    return result


# -- texts: sentences said once per report ------------------------------------------


class TextTable:
    """The report's ``texts``: a text met a second time is added and named by its
    index from then on (its first use stays spelled out, so a text used once costs
    nothing). Remembers at most ``limit`` first uses."""

    def __init__(self, limit: int = 100_000) -> None:
        self.texts: list[str] = []
        self._index: dict[str, int] = {}
        self._met: set[str] = set()
        self._limit = limit

    def name(self, text: str) -> str | int:
        if text in self._index:
            return self._index[text]
        if text not in self._met:
            if len(self._met) < self._limit:
                self._met.add(text)
            return text
        self._index[text] = len(self.texts)
        self.texts.append(text)
        return self._index[text]


def text_of(value: str | int, texts: Sequence[str]) -> str:
    """A text as written: spelled out, or the index of a report text."""
    if isinstance(value, str):
        return value
    if type(value) is int and 0 <= value < len(texts):
        return texts[value]
    raise ValueError(f"text {value!r} is not in the report's texts")
