"""The plan catalogue (``geo.plan``) against the two plan documents it was read from.

Counts are read off the seed texts independently (mission headings, objective number
markers, driver headings, the keyword table) and compared with ``data/plan``; tests that
need ``../shared`` skip, with the reason, when it is absent.
"""

from __future__ import annotations

import ast
import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from geo.names import fold
from geo.plan import PLAN_DIR, PlanCatalogue, PlanDataError, PlanNotFound, load

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
SEED_2025 = SHARED / "seeds" / "000_2ed3f78c4ced3dbc.txt"
SEED_2022 = SHARED / "seeds" / "002_f5b5634bff315766.txt"
INTERVENTIONS = SHARED / "reference" / "interventions.csv"

ORDINALS = ("prima", "seconda", "terza", "quarta", "quinta", "sesta")
KEYWORDS = ("Sostenibilità", "Connettività", "Prossimità", "Inclusione", "Attrattività")


def _seed(path: Path) -> str:
    if not path.is_file():
        pytest.skip(f"seed {path.name} is absent ({path}); this test reads ../shared/seeds")
    return path.read_text(encoding="utf-8")


def _squash(text: str) -> str:
    """Text without whitespace: PDF line breaks and doubled spaces stop mattering."""
    return re.sub(r"\s+", "", text)


def _unbreak(text: str) -> str:
    """Like :func:`_squash`, also joining words hyphenated at a line end (``adatta-\\nmento``)."""
    return _squash(re.sub(r"-[ \t]*\n\s*", "", text))


@pytest.fixture(scope="module")
def cat() -> PlanCatalogue:
    return load()


@pytest.fixture(scope="module")
def seed25() -> str:
    return _seed(SEED_2025)


@pytest.fixture(scope="module")
def seed22() -> str:
    return _seed(SEED_2022)


def mission_sections(seed: str) -> dict[str, str]:
    """The 2025-2027 text of each mission's objectives, keyed ``M1``…``M6``.

    A section runs from the last occurrence of the mission's introduction ("La prima
    Missione…", repeated on some pages; the heading of Missione 5 is lost in the text)
    to the next introduction, or to the Agenda strategica for the last one.
    """
    starts = []
    for ordinal in ORDINALS:
        found = [m.start() for m in re.finditer(rf"\b{ordinal} Missione\b", seed)]
        assert found, f"no introduction of the {ordinal} Missione in the seed"
        starts.append(found[-1])
    ends = [
        *(seed.index(f"{o} Missione") for o in ORDINALS[1:]),
        seed.index("Agenda strategica"),
    ]
    return {f"M{i + 1}": seed[s:e] for i, (s, e) in enumerate(zip(starts, ends, strict=True))}


def objective_markers(section: str) -> set[int]:
    """Objective numbers in a section, however the extraction placed them.

    Before the text (``2 Potenziamento…``), alone on a line (``2``), or glued to the end of
    the text (``mobility manager d’area13``).
    """
    numbers: set[int] = set()
    for line in section.splitlines():
        for pattern in (
            r"^\s*([1-9]\d?) [A-ZÀ-Ü]",
            r"^\s*([1-9]\d?)\s*$",
            r"[a-zà-ù’']([1-9]\d?)\s*$",
        ):
            if m := re.search(pattern, line):
                numbers.add(int(m.group(1)))
                break
    return numbers


# --------------------------------------------------------------------------- missions


def test_six_missions_as_in_both_seeds(cat: PlanCatalogue, seed25: str, seed22: str) -> None:
    headings22 = {int(n) for n in re.findall(r"^MISSIONE (\d)\.", seed22, flags=re.M)}
    headings25 = {int(n) for n in re.findall(r"MISSIONE (\d)\.", seed25)}
    intros25 = {i + 1 for i, o in enumerate(ORDINALS) if re.search(rf"\b{o} Missione\b", seed25)}
    assert headings22 == intros25 == set(range(1, 7))
    assert headings25 <= intros25  # the 2025-2027 text lost the "MISSIONE 5." heading
    assert [m.code for m in cat.missions] == [f"M{n}" for n in sorted(headings22)]


def test_mission_titles_and_descriptions_are_the_plans(
    cat: PlanCatalogue, seed25: str, seed22: str
) -> None:
    for m in cat.missions:
        heading = f"MISSIONE {m.code[1:]}."
        # the title follows the heading; the 2025-2027 text lost the heading of Missione 5
        seed = seed25 if heading in seed25 else seed22
        after = seed[seed.index(heading) : seed.index(heading) + 120]
        assert fold(m.title) in fold(after), m.code
        assert _squash(m.description) in _squash(seed25), m.code
    assert cat.mission("M5").title == "Inclusione e coesione"


# --------------------------------------------------------------------------- objectives


def test_objective_numbers_match_the_seed(cat: PlanCatalogue, seed25: str) -> None:
    sections = mission_sections(seed25)
    for code, section in sections.items():
        markers = objective_markers(section)
        assert markers == set(range(1, max(markers) + 1)), f"{code}: gaps in {sorted(markers)}"
        numbers = [o.number for o in cat.objectives_for(code)]
        assert numbers == sorted(markers), code
    assert len(cat.objectives) == sum(len(objective_markers(s)) for s in sections.values())


def test_objective_texts_are_verbatim_in_their_mission(cat: PlanCatalogue, seed25: str) -> None:
    sections = {code: _squash(s) for code, s in mission_sections(seed25).items()}
    for o in cat.objectives:
        assert o.id == f"{o.mission}.{o.number}"
        assert _squash(o.text) in sections[o.mission], o.id
        assert "2025-2027" in o.source
        assert "  " not in o.text and not re.search(r"\w- \w", o.text), o.id


def test_objective_numbers_sit_next_to_their_text(cat: PlanCatalogue, seed25: str) -> None:
    """Each number is where the section's layout puts it, next to the text it numbers.

    Sections whose numbers open a line (``2 Potenziamento…``) number the text after them;
    the others number the text before them (``…d’area13``); where the texts and the numbers
    come out as two separate blocks (Missione 6), they are paired by position.
    """
    for code, raw in mission_sections(seed25).items():
        kept = [i for i, c in enumerate(raw) if not c.isspace()]  # squashed index -> raw index
        section = _squash(raw)
        objectives = cat.objectives_for(code)
        number_first = bool(re.search(r"^\s*[1-9]\d? [A-ZÀ-Ü]", raw, flags=re.M))
        glued = []
        for o in objectives:
            i = section.index(_squash(o.text))
            start, end = kept[i], kept[i + len(_squash(o.text)) - 1] + 1
            if number_first:
                m = re.search(r"(?:^|\n)[ \t]*(\d{1,2}) ?$", raw[:start])
            else:
                m = re.match(r"\s*(\d{1,2})(?!\d)", raw[end:])
            glued.append((o.number, int(m.group(1)) if m else None))
        if all(found is not None for _, found in glued):
            assert all(n == found for n, found in glued), (code, glued)
            continue
        # texts first, then all the numbers: only the last text is followed by a number
        assert sum(found is not None for _, found in glued) <= 1, (code, glued)
        block = [int(n) for n in re.findall(r"^\s*([1-9]\d?)\s*$", raw, flags=re.M)]
        block = block[: len(objectives)]
        by_position = sorted(objectives, key=lambda o: section.index(_squash(o.text)))
        assert [o.number for o in by_position] == block, code
        assert all("paired by position" in o.note for o in objectives), code


def test_objective_counts(cat: PlanCatalogue) -> None:
    counts = {m.code: len(cat.objectives_for(m.code)) for m in cat.missions}
    assert counts == {"M1": 15, "M2": 17, "M3": 15, "M4": 11, "M5": 13, "M6": 4}


# --------------------------------------------------------------------------- drivers


def test_ten_drivers_as_in_the_seeds(cat: PlanCatalogue, seed25: str, seed22: str) -> None:
    headings = dict(re.findall(r"^DRIVER (\d+) \| (.+)$", seed22, flags=re.M))
    listed = re.findall(r"^(\d+)\| ", seed22, flags=re.M)
    assert len(headings) == len(listed) == 10
    assert "dieci Driver" in seed25 and "dieci filoni di lavoro prioritari" in seed22
    assert [d.number for d in cat.drivers] == sorted(int(n) for n in headings)
    for d in cat.drivers:
        assert fold(d.title).replace(" ", "") == fold(headings[str(d.number)]).replace(" ", "")
        assert fold(d.subtitle) in fold(seed22), d.number


def test_driver_descriptions_are_the_2025_texts(cat: PlanCatalogue, seed25: str) -> None:
    agenda = _unbreak(seed25[seed25.index("Agenda strategica") :])
    positions = []
    for d in cat.drivers:
        assert _squash(d.description) in agenda, d.number
        positions.append(agenda.index(_squash(d.description)))
    assert positions == sorted(positions), "descriptions are in driver order in the seed"


def test_every_driver_combines_valid_missions(cat: PlanCatalogue) -> None:
    codes = {m.code for m in cat.missions}
    for d in cat.drivers:
        assert d.missions and set(d.missions) <= codes, d.number
        assert d.objectives, d.number
        assert {cat.objective(o).mission for o in d.objectives} == set(d.missions), d.number
        assert "inferred" in d.missions_basis
    assert set().union(*(d.missions for d in cat.drivers)) == codes
    assert [d.number for d in cat.drivers_for("m6")] == [10]


# --------------------------------------------------------------------------- keywords


def test_keywords_match_the_2022_table(cat: PlanCatalogue, seed25: str, seed22: str) -> None:
    header = next(line for line in seed22.splitlines() if line.startswith("\tSostenibilità"))
    words = header.split("\t")[1:]
    table: dict[str, set[str]] = {w: set() for w in words}
    for n, cells in re.findall(r"^MISSIONE (\d) [^\t\n]+((?:\t[^\t\n]*)+)$", seed22, flags=re.M):
        for word, cell in zip(words, cells.split("\t")[1:], strict=True):
            if cell.strip():
                table[word].add(f"M{n}")
    bullets = re.findall(r"^•\s*([A-ZÀ-Ü][a-zà-ù]+)\.\s", seed25, flags=re.M)
    assert tuple(words) == tuple(bullets) == KEYWORDS
    assert [k.keyword for k in cat.keywords] == list(KEYWORDS)
    assert {k.keyword: set(k.missions) for k in cat.keywords} == table
    for k in cat.keywords:
        assert _squash(k.description) in _squash(seed25), k.keyword


# --------------------------------------------------------------------------- programmes


@pytest.mark.shared
def test_every_intervention_programme_is_mapped(cat: PlanCatalogue) -> None:
    if not INTERVENTIONS.is_file():
        pytest.skip(f"../shared/reference/interventions.csv is absent ({INTERVENTIONS})")
    with INTERVENTIONS.open(encoding="utf-8", newline="") as f:
        used = {row["programme"] for row in csv.DictReader(f)}
    names = {p.name for p in cat.programmes}
    assert used <= names, f"not in programmes.csv: {sorted(used - names)}"
    for name in used:
        assert cat.programme(name).name == name


def test_programmes_point_at_valid_missions_drivers_objectives(cat: PlanCatalogue) -> None:
    codes = {m.code for m in cat.missions}
    for p in cat.programmes:
        assert p.missions and set(p.missions) <= codes, p.name
        assert p.drivers and all(cat.driver(n) for n in p.drivers), p.name
        assert {cat.objective(o).mission for o in p.objectives} <= set(p.missions), p.name
        assert p.rationale and p.description, p.name


def test_lookups(cat: PlanCatalogue) -> None:
    assert cat.programme("  pui   spugna ") is cat.programme("PUI SPUGNA")
    assert cat.programme("Spugna").name == "PUI SPUGNA"
    assert cat.programme("centri per l'impiego").name == "CPI"
    assert cat.programme("EDILIZIA  SCOLASTICA").name == "Edilizia scolastica"
    assert cat.mission(" m3 ").title == "Infrastrutture per una mobilità sostenibile"
    assert cat.driver(5).title == cat.driver("5").title == "Il diritto alla mobilità"
    assert cat.keyword("sostenibilita").missions == ("M1", "M2", "M3")
    assert [o.id for o in cat.objectives_for("M6")] == ["M6.1", "M6.2", "M6.3", "M6.4"]
    assert {d.number for d in cat.drivers_for("M2")} >= {2, 3, 4}
    misses = (
        lambda: cat.programme("spugnaa"),
        lambda: cat.driver(11),
        lambda: cat.mission("M7"),
    )
    for miss in misses:
        with pytest.raises(KeyError):
            miss()
    with pytest.raises(PlanNotFound) as err:
        cat.programme("spugnaa")
    assert err.value.status == 404
    assert err.value.details["suggestions"][0]["value"] == "PUI SPUGNA"


def test_to_dict_is_json(cat: PlanCatalogue) -> None:
    data = json.loads(json.dumps(cat.to_dict()))
    assert [len(data[k]) for k in ("missions", "drivers", "keywords")] == [6, 10, 5]
    assert len(data["objectives"]) == len(cat.objectives)
    assert data["missions"][0]["objectives"][0] == "M1.1"
    assert data["drivers"][0]["missions"] == ["M1"]


def test_load_is_cached_and_defaults_to_repo(cat: PlanCatalogue) -> None:
    assert load() is cat is PlanCatalogue.load(PLAN_DIR)
    assert Path(__file__).resolve().parents[2] / "data" / "plan" == PLAN_DIR


def test_domain_module_imports_no_web_framework() -> None:
    imported: set[str] = set()
    package = Path(__file__).resolve().parents[2] / "geo" / "plan"
    nodes = [
        node
        for source in sorted(package.glob("*.py"))
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8")))
    ]
    assert nodes
    for node in nodes:
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert not imported & {"fastapi", "starlette", "api"}


# --------------------------------------------------------------------------- validation


def _broken(tmp_path: Path, file: str, edit) -> Path:
    """A copy of data/plan whose ``file`` rows went through ``edit(rows)``."""
    target = tmp_path / "plan"
    shutil.copytree(PLAN_DIR, target)
    path = target / file
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames or []), list(reader)
    edit(rows)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return target


def _set(index: int, **values: str):
    def edit(rows: list[dict[str, str]]) -> None:
        rows[index].update(values)

    return edit


def _duplicate(index: int):
    def edit(rows: list[dict[str, str]]) -> None:
        rows.append(dict(rows[index]))

    return edit


@pytest.mark.parametrize(
    ("file", "edit", "row", "message"),
    [
        ("objectives.csv", _set(2, mission="M7"), 3, "unknown mission code 'M7'"),
        ("objectives.csv", _set(0, id="M1.2"), 1, "does not match"),
        ("objectives.csv", _duplicate(4), 76, "duplicate objective id 'M1.5'"),
        ("drivers.csv", _set(1, missions="M2;M9"), 2, "unknown mission code 'M9'"),
        ("drivers.csv", _duplicate(0), 11, "duplicate driver number 1"),
        ("drivers.csv", _set(0, objectives="M2.1"), 1, "objective M2.1 belongs to M2"),
        ("keywords.csv", _set(4, missions="M1;M0"), 5, "unknown mission code 'M0'"),
        ("missions.csv", _duplicate(5), 7, "duplicate mission code 'M6'"),
        ("programmes.csv", _set(3, drivers="9;11"), 4, "unknown driver '11'"),
        ("programmes.csv", _set(0, missions="M2;X1"), 1, "unknown mission code 'X1'"),
        ("programmes.csv", _set(1, aliases="pui  spugna"), 2, "duplicate programme name"),
        ("programmes.csv", _set(2, drivers=""), 3, "empty 'drivers'"),
    ],
)
def test_broken_tables_name_file_and_row(
    tmp_path: Path, file: str, edit, row: int, message: str
) -> None:
    bad_dir = _broken(tmp_path, file, edit)
    with pytest.raises(ValueError) as err:
        PlanCatalogue.from_dir(bad_dir)
    assert isinstance(err.value, PlanDataError)
    text = str(err.value)
    assert text.startswith(f"{file}, row {row} (line {row + 1})"), text
    assert message in text


def test_load_of_a_broken_dir_raises(tmp_path: Path) -> None:
    bad_dir = _broken(tmp_path, "drivers.csv", _set(9, missions="M6;M8"))
    with pytest.raises(ValueError, match=r"drivers\.csv, row 10 .*'M8'"):
        load(bad_dir)


def test_missing_column_or_file_is_named(tmp_path: Path) -> None:
    target = tmp_path / "plan"
    shutil.copytree(PLAN_DIR, target)
    (target / "keywords.csv").write_text("keyword,source\nX,y\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"keywords\.csv: missing column\(s\) missions"):
        PlanCatalogue.from_dir(target)
    (target / "keywords.csv").unlink()
    with pytest.raises(ValueError, match=r"keywords\.csv: file not found"):
        PlanCatalogue.from_dir(target)
