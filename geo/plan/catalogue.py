"""The strategic plan catalogue: PNRR missions, objectives, Drivers, keywords, programmes.

Read from the committed CSV files in ``data/plan`` (see its README for how they were
read off the PSTTM 2025-2027 and 2022-2024 documents) and validated when loaded: an
unknown mission code, driver or objective, a duplicate id or a malformed value raises
:class:`PlanDataError` (a ``ValueError``) naming the file and the row.

>>> cat = load()
>>> cat.mission("m2").title
'Rivoluzione verde e transizione ecologica'
>>> [d.number for d in cat.drivers_for("M6")]
[10]
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from geo import REPO_DATA_DIR
from geo.errors import DataError, NotFound
from geo.names import NameIndex, name_key

#: Default location of the catalogue: the repository's ``data/plan``.
PLAN_DIR = REPO_DATA_DIR / "plan"

MISSION_CODE = re.compile(r"^M[1-9]$")
OBJECTIVE_ID = re.compile(r"^(M[1-9])\.(\d{1,2})$")


class PlanDataError(DataError, ValueError):
    """A plan table is malformed; the message names the file and the row."""


class PlanNotFound(NotFound, KeyError):
    """A lookup found nothing (HTTP 404 through the API, ``KeyError`` for Python callers)."""

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Mission:
    """One of the six PNRR missions the plan's objectives are organised by."""

    code: str
    title: str
    description: str
    source: str


@dataclass(frozen=True)
class Objective:
    """A 2025-2027 strategic objective, numbered within its mission (``M1.1``)."""

    id: str
    mission: str
    number: int
    text: str
    source: str
    note: str = ""


@dataclass(frozen=True)
class Driver:
    """One of the ten Drivers of the Agenda strategica and the missions it combines."""

    number: int
    title: str
    subtitle: str
    description: str
    missions: tuple[str, ...]
    objectives: tuple[str, ...]
    missions_basis: str
    source: str


@dataclass(frozen=True)
class Keyword:
    """A keyword of the metropolitan vision and the missions it inspires."""

    keyword: str
    description: str
    missions: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Programme:
    """An intervention programme mapped to the plan's missions, Drivers and objectives."""

    name: str
    aliases: tuple[str, ...]
    description: str
    missions: tuple[str, ...]
    drivers: tuple[int, ...]
    objectives: tuple[str, ...]
    funding: str
    rationale: str
    source: str


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Row:
    """One CSV record and where it is: ``row`` counts data rows from 1, ``line`` is 1-based."""

    file: str
    row: int
    line: int
    values: dict[str, str]

    def where(self) -> str:
        return f"{self.file}, row {self.row} (line {self.line})"

    def fail(self, message: str) -> PlanDataError:
        return PlanDataError(f"{self.where()}: {message}")

    def text(self, column: str, *, required: bool = True) -> str:
        value = (self.values.get(column) or "").strip()
        if required and not value:
            raise self.fail(f"empty {column!r}")
        return value

    def integer(self, column: str) -> int:
        value = self.text(column)
        if not value.isdigit():
            raise self.fail(f"{column!r} is not a positive integer: {value!r}")
        return int(value)

    def items(self, column: str, *, required: bool = True) -> tuple[str, ...]:
        """A ``;``-separated list, blanks dropped, order kept."""
        parts = tuple(p.strip() for p in self.text(column, required=required).split(";"))
        parts = tuple(p for p in parts if p)
        if len(set(parts)) != len(parts):
            raise self.fail(f"repeated item in {column!r}: {';'.join(parts)}")
        return parts


def _read(path: Path, columns: Iterable[str]) -> Iterator[_Row]:
    """Rows of a CSV file, checking that the header has ``columns``."""
    if not path.is_file():
        raise PlanDataError(f"{path.name}: file not found in {path.parent}")
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise PlanDataError(f"{path.name}: missing column(s) {', '.join(missing)}")
        start = reader.line_num + 1
        for n, values in enumerate(reader, start=1):
            if None in values:
                raise PlanDataError(f"{path.name}, row {n} (line {start}): too many fields")
            yield _Row(path.name, n, start, values)
            start = reader.line_num + 1


def _missions_ok(row: _Row, column: str, known: dict[str, Mission]) -> tuple[str, ...]:
    codes = tuple(c.upper() for c in row.items(column))
    for code in codes:
        if code not in known:
            raise row.fail(f"unknown mission code {code!r} in {column!r}")
    return codes


def _objectives_ok(
    row: _Row, known: dict[str, Objective], missions: tuple[str, ...]
) -> tuple[str, ...]:
    ids = tuple(i.upper() for i in row.items("objectives", required=False))
    for oid in ids:
        if oid not in known:
            raise row.fail(f"unknown objective {oid!r}")
        if known[oid].mission not in missions:
            raise row.fail(
                f"objective {oid} belongs to {known[oid].mission}, not listed in 'missions'"
            )
    return ids


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class PlanCatalogue:
    """The whole catalogue, with lookups. Build it with :func:`load`."""

    missions: tuple[Mission, ...]
    objectives: tuple[Objective, ...]
    drivers: tuple[Driver, ...]
    keywords: tuple[Keyword, ...]
    programmes: tuple[Programme, ...]
    data_dir: Path
    _names: NameIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = NameIndex(
            (label, p.name) for p in self.programmes for label in (p.name, *p.aliases)
        )
        object.__setattr__(self, "_names", names)

    @classmethod
    def load(cls, data_dir: Path | None = None) -> PlanCatalogue:
        """The catalogue in ``data_dir`` (default: the repository's ``data/plan``), cached."""
        return load(data_dir)

    @classmethod
    def from_dir(cls, data_dir: Path) -> PlanCatalogue:
        """Read and validate the five tables (uncached)."""
        missions: dict[str, Mission] = {}
        for row in _read(data_dir / "missions.csv", ("code", "title", "description", "source")):
            code = row.text("code").upper()
            if not MISSION_CODE.match(code):
                raise row.fail(f"malformed mission code {code!r}")
            if code in missions:
                raise row.fail(f"duplicate mission code {code!r}")
            missions[code] = Mission(
                code, row.text("title"), row.text("description", required=False), row.text("source")
            )

        objectives: dict[str, Objective] = {}
        seen: set[tuple[str, int]] = set()
        cols = ("id", "mission", "number", "text", "source")
        for row in _read(data_dir / "objectives.csv", cols):
            oid, number = row.text("id").upper(), row.integer("number")
            codes = _missions_ok(row, "mission", missions)
            if len(codes) != 1:
                raise row.fail(f"one mission code expected, got {';'.join(codes)!r}")
            mission = codes[0]
            m = OBJECTIVE_ID.match(oid)
            if not m or m.group(1) != mission or int(m.group(2)) != number:
                raise row.fail(f"id {oid!r} does not match mission {mission} and number {number}")
            if oid in objectives or (mission, number) in seen:
                raise row.fail(f"duplicate objective id {oid!r}")
            seen.add((mission, number))
            objectives[oid] = Objective(
                oid,
                mission,
                number,
                row.text("text"),
                row.text("source"),
                row.text("note", required=False),
            )

        drivers: dict[int, Driver] = {}
        cols = ("number", "title", "missions", "source")
        for row in _read(data_dir / "drivers.csv", cols):
            number = row.integer("number")
            if number in drivers:
                raise row.fail(f"duplicate driver number {number}")
            codes = _missions_ok(row, "missions", missions)
            drivers[number] = Driver(
                number=number,
                title=row.text("title"),
                subtitle=row.text("subtitle", required=False),
                description=row.text("description", required=False),
                missions=codes,
                objectives=_objectives_ok(row, objectives, codes),
                missions_basis=row.text("missions_basis", required=False),
                source=row.text("source"),
            )

        keywords: dict[str, Keyword] = {}
        for row in _read(data_dir / "keywords.csv", ("keyword", "missions", "source")):
            word = row.text("keyword")
            if name_key(word) in keywords:
                raise row.fail(f"duplicate keyword {word!r}")
            keywords[name_key(word)] = Keyword(
                word,
                row.text("description", required=False),
                _missions_ok(row, "missions", missions),
                row.text("source"),
            )

        programmes: list[Programme] = []
        keys: dict[str, str] = {}
        cols = ("programme", "description", "missions", "drivers", "rationale")
        for row in _read(data_dir / "programmes.csv", cols):
            name = row.text("programme")
            aliases = row.items("aliases", required=False)
            for label in (name, *aliases):
                key = name_key(label)
                if key in keys:
                    raise row.fail(f"duplicate programme name {label!r} (also {keys[key]!r})")
                keys[key] = name
            codes = _missions_ok(row, "missions", missions)
            numbers: list[int] = []
            for d in row.items("drivers"):
                if not d.isdigit() or int(d) not in drivers:
                    raise row.fail(f"unknown driver {d!r}")
                numbers.append(int(d))
            programmes.append(
                Programme(
                    name=name,
                    aliases=aliases,
                    description=row.text("description"),
                    missions=codes,
                    drivers=tuple(numbers),
                    objectives=_objectives_ok(row, objectives, codes),
                    funding=row.text("funding", required=False),
                    rationale=row.text("rationale"),
                    source=row.text("source", required=False),
                )
            )

        return cls(
            missions=tuple(sorted(missions.values(), key=lambda m: int(m.code[1:]))),
            objectives=tuple(
                sorted(objectives.values(), key=lambda o: (int(o.mission[1:]), o.number))
            ),
            drivers=tuple(sorted(drivers.values(), key=lambda d: d.number)),
            keywords=tuple(keywords.values()),
            programmes=tuple(programmes),
            data_dir=data_dir,
        )

    # ------------------------------------------------------------------ lookups

    def mission(self, code: str) -> Mission:
        """The mission ``code`` (``M1``…``M6``, case-insensitive)."""
        wanted = code.strip().upper()
        for m in self.missions:
            if m.code == wanted:
                return m
        raise PlanNotFound(
            f"unknown mission {code!r}", details={"known": [m.code for m in self.missions]}
        )

    def objective(self, objective_id: str) -> Objective:
        """The objective ``M<n>.<k>`` (case-insensitive)."""
        wanted = objective_id.strip().upper()
        for o in self.objectives:
            if o.id == wanted:
                return o
        raise PlanNotFound(f"unknown objective {objective_id!r}")

    def driver(self, number: int | str) -> Driver:
        """The Driver numbered ``number`` (1…10)."""
        for d in self.drivers:
            if str(d.number) == str(number).strip():
                return d
        raise PlanNotFound(
            f"unknown driver {number!r}", details={"known": [d.number for d in self.drivers]}
        )

    def keyword(self, word: str) -> Keyword:
        """The keyword ``word`` (case-, accent- and space-insensitive)."""
        for k in self.keywords:
            if name_key(k.keyword) == name_key(word):
                return k
        raise PlanNotFound(f"unknown keyword {word!r}")

    def programme(self, name: str) -> Programme:
        """The programme called ``name`` or one of its aliases (case/space-insensitive)."""
        found = self._names.get(name)
        if found is not None:
            return next(p for p in self.programmes if p.name == found)
        raise PlanNotFound(
            f"unknown programme {name!r}",
            details={"suggestions": self._names.suggest(name)},
        )

    def objectives_for(self, mission_code: str) -> tuple[Objective, ...]:
        """The mission's objectives, by number."""
        code = self.mission(mission_code).code
        return tuple(o for o in self.objectives if o.mission == code)

    def drivers_for(self, mission_code: str) -> tuple[Driver, ...]:
        """The Drivers that combine the mission."""
        code = self.mission(mission_code).code
        return tuple(d for d in self.drivers if code in d.missions)

    def keywords_for(self, mission_code: str) -> tuple[Keyword, ...]:
        """The keywords that inspire the mission."""
        code = self.mission(mission_code).code
        return tuple(k for k in self.keywords if code in k.missions)

    def programmes_for(self, mission_code: str) -> tuple[Programme, ...]:
        """The programmes mapped to the mission."""
        code = self.mission(mission_code).code
        return tuple(p for p in self.programmes if code in p.missions)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the whole catalogue (lists, no tuples or paths)."""

        def plain(obj: Any) -> dict[str, Any]:
            return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(obj).items()}

        return {
            "missions": [
                {**plain(m), "objectives": [o.id for o in self.objectives_for(m.code)]}
                for m in self.missions
            ],
            "objectives": [plain(o) for o in self.objectives],
            "drivers": [plain(d) for d in self.drivers],
            "keywords": [plain(k) for k in self.keywords],
            "programmes": [plain(p) for p in self.programmes],
        }


@lru_cache(maxsize=8)
def _load(data_dir: Path) -> PlanCatalogue:
    return PlanCatalogue.from_dir(data_dir)


def load(data_dir: Path | None = None) -> PlanCatalogue:
    """The catalogue in ``data_dir`` (default :data:`PLAN_DIR`), loaded once per directory."""
    if data_dir is None:  # every items request asks for it: no path resolution each time
        return _load(_plan_dir())
    return _load(data_dir.resolve())


@lru_cache(maxsize=1)
def _plan_dir() -> Path:
    return PLAN_DIR.resolve()


def clear_cache() -> None:
    """Forget loaded catalogues (after editing the CSV files)."""
    _load.cache_clear()
