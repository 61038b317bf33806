"""Large JSON annotation files read record by record into numpy columns (book chapter 1).

``json.load`` of InterHand2.6M's train data file (about 1 GB) builds several GB of Python
objects before a single array exists. Here :class:`JsonStream` walks a file front to back,
decoding one record at a time, and hands its reader (the index builder, which pulls them)
every :data:`CHUNK_ROWS` records as one :class:`Chunk` to read into numpy columns, so it
holds at most one chunk of per-record Python objects. Every problem is an
:class:`InterHandFormatError` naming the file and the field.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Numbers must stay below this: the index holds them as float32, where more is infinite."""
INT64_MAX = int(np.iinfo(np.int64).max)


class InterHandFormatError(ValueError):
    """An annotation file is missing, malformed, or has a field of the wrong shape or type."""

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        self.path, self.field = Path(path), field
        super().__init__(f"{path}: field '{field}': {problem}")


def read_json(path: Path) -> Any:
    """A small file (the camera file) read whole."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InterHandFormatError(path, "(file)", f"not valid JSON: {err}") from None
    except RecursionError:
        raise InterHandFormatError(path, "(file)", "arrays or objects nested too deeply") from None


@contextlib.contextmanager
def cycle_collection_paused() -> Iterator[None]:
    """Pause Python's cycle collector while reading: decoded records hold no reference cycles,
    yet every few thousand of them it would rescan all the live ones (3x the CPU time).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_SPACE = re.compile(r"[ \t\n\r]*")


class JsonStream:
    """A JSON file walked front to back in chunks of ``chunk`` characters.

    The caller enters objects and arrays (:meth:`members`, :meth:`elements`) and decodes the
    values below them one at a time (:meth:`value`), so memory holds one record, not the
    multi-GB file as Python objects.
    """

    def __init__(self, path: Path, chunk: int = 1 << 22) -> None:
        self.path, self._chunk = path, chunk
        self._file = open(path, encoding="utf-8")  # closed by __exit__
        self._buf, self._pos, self._dropped = "", 0, 0
        self._decoder = json.JSONDecoder()

    def __enter__(self) -> JsonStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def _more(self) -> bool:
        """Drop what was consumed and read on: at least a chunk, or as much as the buffer
        holds (so a value longer than a chunk is re-decoded only log many times); False at
        the end of the file.
        """
        try:
            text = self._file.read(max(self._chunk, len(self._buf) - self._pos))
        except UnicodeDecodeError as err:
            raise InterHandFormatError(self.path, "(file)", f"not valid UTF-8: {err}") from None
        self._dropped += self._pos
        self._buf, self._pos = self._buf[self._pos :] + text, 0
        return bool(text)

    def _invalid(self, problem: str, pos: int) -> InterHandFormatError:
        at = self._dropped + pos
        return InterHandFormatError(self.path, "(file)", f"not valid JSON: {problem} (char {at})")

    def _peek(self) -> str:
        """The next non-blank character, not consumed ('' at the end of the file)."""
        while True:
            self._pos = _SPACE.match(self._buf, self._pos).end()
            if self._pos < len(self._buf) or not self._more():
                return self._buf[self._pos : self._pos + 1]

    def _take(self, chars: str) -> str:
        """Consume the next character, one of ``chars`` in valid JSON."""
        char = self._peek()
        if not char or char not in chars:
            raise self._invalid(f"expected one of {chars!r}", self._pos)
        self._pos += 1
        return char

    def value(self) -> Any:
        """Decode the next value whole."""
        self._peek()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buf, self._pos)
            except json.JSONDecodeError as err:
                if self._more():
                    continue
                raise self._invalid(err.msg, err.pos) from None
            except RecursionError:
                raise self._invalid("arrays or objects nested too deeply", self._pos) from None
            # A number running into the end of the buffer may go on in the next chunk.
            if end < len(self._buf) or not self._more():
                self._pos = end
                return value

    def _enter(self, opening: str, where: str) -> None:
        if self._peek() != opening:
            kind = type(self.value()).__name__  # raises if it is not JSON at all
            expected = "an object" if opening == "{" else "an array"
            raise InterHandFormatError(self.path, where, f"expected {expected}, got {kind}")
        self._pos += 1

    def members(self, where: str) -> Iterator[str]:
        """Enter the object at ``where`` and yield its keys; consume each value before the next."""
        self._enter("{", where)
        if self._peek() == "}":
            self._pos += 1
            return
        while True:
            if self._peek() != '"':
                raise self._invalid("expected a key", self._pos)
            key = self.value()
            self._take(":")
            yield key
            if self._take(",}") == "}":
                return

    def elements(self, where: str) -> Iterator[int]:
        """Enter the array at ``where`` and yield positions; consume each element first."""
        self._enter("[", where)
        if self._peek() == "]":
            self._pos += 1
            return
        for i in itertools.count():
            yield i
            if self._take(",]") == "]":
                return

    def chunks(self, where: str, name: str) -> Iterator[Chunk]:
        """Enter the array at ``where`` and yield its elements in :func:`chunked` chunks,
        element ``i`` named ``name.format(i)``."""
        return chunked(self.path, name, ((self.value(), (i,)) for i in self.elements(where)))

    def end(self) -> None:
        """Check that nothing but blanks follows the top-level value."""
        if self._peek():
            raise self._invalid("extra data", self._pos)


@dataclass(slots=True)
class Record:
    """One JSON object and where it sits, so every check can name the file and the field."""

    value: Any
    path: Path
    where: str

    def get(self, key: str) -> Any:
        if not isinstance(self.value, dict) or key not in self.value:
            raise InterHandFormatError(self.path, f"{self.where}.{key}", "missing")
        return self.value[key]

    def sub(self, key: str) -> Record:
        return Record(self.get(key), self.path, f"{self.where}.{key}")

    def fail(self, key: str, problem: str) -> InterHandFormatError:
        return InterHandFormatError(self.path, f"{self.where}.{key}", problem)

    def int(self, key: str) -> int:
        value = self.get(key)
        if type(value) is int and 0 <= value <= INT64_MAX:  # the common case, checked first
            return value
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
            raise self.fail(key, f"expected a non-negative integer, got {value!r}")
        if int(value) > INT64_MAX:
            raise self.fail(key, f"{value} is too large for a 64-bit integer")
        return int(value)

    def flag(self, key: str) -> int:
        value = self.get(key)
        if value not in (0, 1):  # True and False compare equal to 1 and 0
            raise self.fail(key, f"expected 0/1, got {value!r}")
        return int(value)

    def array(self, key: str, shape: tuple[int, ...], flags: bool = False) -> np.ndarray:
        """A float64 array of ``shape`` (42 x [v] lists are flattened to (42,)), finite and
        within float32's range; with ``flags``, of 0/1 values.
        """
        try:
            arr = np.asarray(self.get(key), dtype=np.float64)
        except (TypeError, ValueError):
            raise self.fail(key, f"expected numbers of shape {shape}") from None
        if arr.shape not in (shape, (*shape, 1)) or not np.all(np.abs(arr) <= FLOAT32_MAX):
            raise self.fail(
                key, f"expected finite numbers (float32's range) of shape {shape}, got {arr.shape}"
            )
        if flags and not np.isin(arr, (0, 1)).all():
            raise self.fail(key, "expected 0/1 values")
        return arr.reshape(shape)


class Chunk:
    """Consecutive records (decoded JSON objects) of one stream, read column by column.

    A column is converted for all the records at once, and record by record only when that
    fails, so that the error names the bad record: record ``j`` sits at
    ``where.format(*places[j])``, e.g. ``"images[{}]"`` with place ``(7,)``.
    """

    def __init__(self, path: Path, where: str, values: list[Any], places: list[tuple]) -> None:
        self.path, self.where, self.values, self.places = path, where, values, places

    def __len__(self) -> int:
        return len(self.values)

    def record(self, j: int) -> Record:
        return Record(self.values[j], self.path, self.where.format(*self.places[j]))

    def column(self, key: str) -> list[Any]:
        """Field ``key`` of every record, as decoded."""
        try:
            return [value[key] for value in self.values]
        except (KeyError, TypeError):
            return [self.record(j).get(key) for j in range(len(self))]  # raises, naming it

    def ints(self, key: str) -> np.ndarray:
        """(n,) int64 of non-negative integers (digit strings too)."""
        values = self.column(key)
        if set(map(type, values)) <= {int} and (not values or max(values) <= INT64_MAX):
            ints = np.asarray(values, dtype=np.int64)
            if not len(ints) or ints.min() >= 0:
                return ints
        return np.asarray([self.record(j).int(key) for j in range(len(self))], dtype=np.int64)

    def flags(self, key: str) -> np.ndarray:
        """(n,) uint8 of 0/1 (false/true too)."""
        values = self.column(key)
        if set(map(type, values)) <= {int, bool}:
            ints = np.asarray(values, dtype=np.int64)
            if ((ints == 0) | (ints == 1)).all():
                return ints.astype(np.uint8)
        return np.asarray([self.record(j).flag(key) for j in range(len(self))], dtype=np.uint8)

    def numbers(self, key: str, shape: tuple[int, ...], flags: bool = False) -> np.ndarray:
        """(n, *shape) float64 of finite numbers (see :meth:`Record.array`)."""
        try:
            arr = np.array(self.column(key), dtype=np.float64)
            fits = arr.shape[1:] in (shape, (*shape, 1)) or not len(self)
            ok = fits and (np.abs(arr) <= FLOAT32_MAX).all()
            if ok and (not flags or ((arr == 0) | (arr == 1)).all()):
                return arr.reshape(len(self), *shape)
        except (TypeError, ValueError):
            pass
        return np.stack([self.record(j).array(key, shape, flags) for j in range(len(self))])


CHUNK_ROWS = 1 << 13
"""Records read into columns at a time: bounds the Python objects a reader holds (tens of MB)."""


def chunked(path: Path, where: str, records: Iterable[tuple[Any, tuple]]) -> Iterator[Chunk]:
    """``records``, (value, place) pairs, gathered into :class:`Chunk` s of
    :data:`CHUNK_ROWS` (``where`` as there); the last one may be empty, so that even no
    records give one chunk to read typed columns from.

    A chunk is emptied when the next one is drawn: read its columns in the loop's body, so
    at most one chunk of decoded records is alive.
    """
    values: list[Any] = []
    places: list[tuple] = []
    for value, place in records:
        values.append(value)
        places.append(place)
        if len(values) == CHUNK_ROWS:
            yield Chunk(path, where, values, places)
            # Emptied, not only dropped: the caller's loop variable still holds the chunk.
            values.clear()
            places.clear()
            values, places = [], []
    yield Chunk(path, where, values, places)
