"""The store on both backends: embedded SQLite file and PostgreSQL + PostGIS.

Every test here runs twice (``store_backend`` is parametrised): same schema, same
behaviour. PostGIS needs CMM_GEO_TEST_DATABASE_URL (scripts/test.sh starts a throwaway
cluster); a fresh schema per session keeps runs apart.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import sqlalchemy as sa

from geo import interventions as iv
from geo.interventions.reading import read_csv
from geo.store import (
    create_store_engine,
    current_revision,
    get_meta,
    head_revision,
    migrate,
    revision,
    transaction,
)


def _count(engine, table: str = "interventions") -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_migrated_to_head(store_engine):
    assert current_revision(store_engine) == head_revision()
    from alembic.script import ScriptDirectory

    from geo.store import alembic_config

    script = ScriptDirectory.from_config(alembic_config(None))
    chain = [r.revision for r in script.walk_revisions()]
    assert chain[-1] == "0001_interventions"  # the base; later migrations build on it
    assert len(script.get_heads()) == 1  # one linear history
    names = set(sa.inspect(store_engine).get_table_names())
    assert {"interventions", "intervention_comuni", "api_tokens", "store_meta"} <= names
    index_cols = {
        tuple(ix["column_names"]) for ix in sa.inspect(store_engine).get_indexes("interventions")
    }
    assert ("minx", "miny", "maxx", "maxy") in index_cols


def test_migrate_is_idempotent(store_engine):
    migrate(store_engine)
    migrate(store_engine)
    assert current_revision(store_engine) == head_revision()


def test_seeded_once(store_engine):
    assert _count(store_engine) == 104
    with store_engine.connect() as conn:
        assert get_meta(conn, iv.SEED_KEY) is not None
    assert iv.seed(store_engine) is None  # second start: nothing to do
    assert _count(store_engine) == 104


def test_links_table_matches_comuni(store_engine):
    with store_engine.connect() as conn:
        links = conn.execute(
            sa.text("SELECT intervention_id, istat_code FROM intervention_comuni")
        ).all()
        rows = conn.execute(sa.text("SELECT id, comuni FROM interventions")).all()
    by_id: dict[str, set[str]] = {}
    for rid, code in links:
        by_id.setdefault(rid, set()).add(code)
    for row in rows:
        comuni = (
            row.comuni if isinstance(row.comuni, list) else __import__("json").loads(row.comuni)
        )
        assert by_id[row.id] == set(comuni)


def test_transaction_rolls_back(store_engine):
    before = _count(store_engine)
    with pytest.raises(RuntimeError), transaction(store_engine) as conn:
        conn.execute(sa.text("DELETE FROM intervention_comuni"))
        conn.execute(sa.text("DELETE FROM interventions"))
        raise RuntimeError("boom")
    assert _count(store_engine) == before == 104


def test_broken_row_leaves_store_unchanged(store_engine):
    rev_before = revision(store_engine, iv.TOPIC)[0]
    csv = (
        b"id,title,programme,comuni,lat,lon,amount_eur\n"
        b"doc-001,Changed title,PUI SPUGNA,Cormano,,,100\n"
        b"new-1,New one,PINQUA,Rho,,,200\n"
        b"new-2,Broken,PINQUA,Rho,,,twelve\n"
    )
    prepared = iv.prepare(read_csv(csv))
    assert [(e["row"], e["field"]) for e in prepared.errors] == [(3, "amount_eur")]
    with pytest.raises(iv.ValidationFailed):
        iv.upsert(prepared, engine=store_engine)
    assert _count(store_engine) == 104
    assert revision(store_engine, iv.TOPIC)[0] == rev_before
    assert iv.get_feature("doc-001", store_engine)["properties"]["title"] != "Changed title"


def test_upsert_reports_and_is_idempotent(store_engine):
    csv = (
        b"id,title,programme,comuni,lat,lon,amount_eur\n"
        b"st-1,Store test one,PINQUA,Rho,,,1000\n"
        b"st-2,Store test two,Forestazione,Milano,45.47,9.19,\n"
    )
    first = iv.upsert(iv.prepare(read_csv(csv)), engine=store_engine)
    assert (sorted(first.new), first.updated, first.unchanged) == (["st-1", "st-2"], [], [])
    again = iv.upsert(iv.prepare(read_csv(csv)), engine=store_engine)
    assert (again.new, again.updated, sorted(again.unchanged)) == ([], [], ["st-1", "st-2"])
    changed = csv.replace(b"1000", b"2000")
    third = iv.upsert(iv.prepare(read_csv(changed)), engine=store_engine)
    assert (third.new, third.updated) == ([], ["st-1"])
    assert iv.get_feature("st-1", store_engine)["properties"]["amount_eur"] == 2000
    for rid in ("st-1", "st-2"):
        iv.delete(rid, engine=store_engine)
    assert _count(store_engine) == 104
    assert iv.get_feature("st-1", store_engine) is None


def test_data_survive_a_new_engine(store_backend, store_engine):
    url, schema = store_backend
    csv = b"id,title,programme,comuni\nsurvivor,Survives restarts,CPI,Legnano\n"
    iv.upsert(iv.prepare(read_csv(csv)), engine=store_engine)
    fresh = create_store_engine(url, schema=schema)  # as a restarted process would
    try:
        migrate(fresh)
        assert iv.seed(fresh) is None  # not seeded twice
        feat = iv.get_feature("survivor", fresh)
        assert feat is not None
        assert feat["properties"]["comuni_names"] == ["Legnano"]
        assert _count(fresh) == 105
    finally:
        iv.delete("survivor", engine=fresh)
        fresh.dispose()


def test_geometry_round_trip_and_bbox(store_engine):
    snap = iv.snapshot(store_engine)
    with store_engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, geometry_wkb, minx, miny, maxx, maxy FROM interventions")
        ).all()
    for r in rows:
        g = shapely.from_wkb(bytes(r.geometry_wkb))
        assert shapely.equals(g, snap.geometries[snap.by_id[r.id]])
        assert np.allclose(shapely.bounds(g), [r.minx, r.miny, r.maxx, r.maxy])


def test_postgis_geom_column_agrees_with_shapely(store_backend, store_engine):
    url, _ = store_backend
    if not url.startswith("postgresql"):
        # SQLite has no geometry column: the same question is answered by shapely alone.
        assert "geom" not in {
            c["name"] for c in sa.inspect(store_engine).get_columns("interventions")
        }
        return
    box = (9.10, 45.40, 9.25, 45.52)  # central Milano
    with store_engine.connect() as conn:
        srid = conn.execute(sa.text("SELECT DISTINCT ST_SRID(geom) FROM interventions")).all()
        ids = {
            r[0]
            for r in conn.execute(
                sa.text(
                    "SELECT id FROM interventions "
                    "WHERE ST_Intersects(geom, ST_MakeEnvelope(:a, :b, :c, :d, 4326))"
                ),
                dict(zip("abcd", box, strict=True)),
            )
        }
        gist = conn.execute(
            sa.text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_interventions_geom' "
                "AND schemaname = current_schema()"
            )
        ).scalar_one()
    assert srid == [(4326,)]
    assert "gist" in gist.lower()
    snap = iv.snapshot(store_engine)
    expected = {
        snap.ids[i] for i in np.flatnonzero(shapely.intersects(snap.geometries, shapely.box(*box)))
    }
    assert ids == expected
    assert len(ids) > 10


def test_reads_go_to_the_read_replica(postgis_url, monkeypatch):
    """With CMM_GEO_READ_DATABASE_URL, reads — data and revisions — come from the replica and
    writes go to the primary. The stand-in replica is another schema of the same server,
    which differs from the primary by one deleted intervention."""
    import uuid

    from geo.interventions.sql_collection import InterventionsSqlProvider
    from geo.ogc.registry import FeatureQuery
    from geo.settings import get_settings
    from geo.store import bump_revision, get_engine, read_engine

    tag = uuid.uuid4().hex[:8]
    schemas = (f"t_primary_{tag}", f"t_replica_{tag}")
    admin = sa.create_engine(postgis_url)
    with admin.begin() as conn:
        for s in schemas:
            conn.exec_driver_sql(f'CREATE SCHEMA "{s}"')
    sep = "&" if "?" in postgis_url else "?"
    url_primary, url_replica = (
        f"{postgis_url}{sep}options=-csearch_path%3D{s}%2Cpublic" for s in schemas
    )
    try:
        monkeypatch.setenv("CMM_GEO_DATABASE_URL", url_primary)
        get_settings.cache_clear()
        primary = iv.get_store(get_engine(url_primary))
        iv.get_store(get_engine(url_replica))  # the "replica": same rows, migrated apart
        with transaction(primary) as conn:
            gone = conn.execute(sa.text("SELECT min(id) FROM interventions")).scalar_one()
            conn.execute(sa.text("DELETE FROM intervention_comuni WHERE intervention_id = :i"),
                         {"i": gone})  # fmt: skip
            conn.execute(sa.text("DELETE FROM interventions WHERE id = :i"), {"i": gone})
            rev_primary = bump_revision(conn, "interventions")
        provider = InterventionsSqlProvider(primary)
        everything = FeatureQuery(limit=1)
        assert provider.query(everything).number_matched == 103  # no replica: the primary

        monkeypatch.setenv("CMM_GEO_READ_DATABASE_URL", url_replica)
        get_settings.cache_clear()
        provider = InterventionsSqlProvider(primary)
        assert read_engine(primary) is not primary
        assert provider.query(everything).number_matched == 104
        assert provider.get(gone) is not None  # still on the replica
        assert revision(primary, "interventions")[0] != rev_primary  # the replica's version
        assert _count(primary) == 103  # direct use of the engine (writes) is the primary
    finally:
        read_engine(get_engine(url_primary)).dispose()  # the replica's pool, while configured
        monkeypatch.delenv("CMM_GEO_READ_DATABASE_URL", raising=False)
        get_settings.cache_clear()
        for url in (url_primary, url_replica):
            get_engine(url).dispose()
        with admin.begin() as conn:
            for s in schemas:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{s}" CASCADE')
        admin.dispose()


def test_statements_marked_plan_per_values_are_never_prepared(postgis_url):
    """psycopg prepares a statement after five runs, and PostgreSQL may then keep a plan
    made without the values (a filter's count scanning the table for a selective range).
    A statement marked PLAN_PER_VALUES stays unprepared however often it runs; an unmarked
    one is prepared as before."""
    from geo.store import PLAN_PER_VALUES, create_store_engine

    engine = create_store_engine(postgis_url)
    marked = sa.text("SELECT count(*) FROM pg_class WHERE relpages > :n /* marked */")
    plain = sa.text("SELECT count(*) FROM pg_class WHERE relpages > :n /* plain */")
    try:
        with engine.connect() as conn:
            for n in range(8):
                conn.execute(marked, {"n": n}, execution_options={PLAN_PER_VALUES: True})
                conn.execute(plain, {"n": n})
            prepared = (
                conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()
            )
    finally:
        engine.dispose()
    assert any("/* plain */" in s for s in prepared), prepared
    assert not any("/* marked */" in s for s in prepared), prepared


_INSERT_META = sa.text(
    "INSERT INTO store_meta (key, value, updated_at) VALUES (:k, '1', CURRENT_TIMESTAMP)"
)


def test_a_worker_keeps_as_many_connections_as_it_serves_requests(store_engine):
    """Both stores pool ``CMM_GEO_DB_POOL_SIZE`` connections: with SQLAlchemy's default of
    five, SQLite's sixth concurrent read opened a connection and closed it again."""
    from geo.settings import get_settings

    assert store_engine.pool.size() == get_settings().db_pool_size


def test_reads_autocommit_and_see_what_was_committed_meanwhile(store_engine):
    """A read connection begins no transaction (on SQLite no BEGIN, on PostgreSQL
    AUTOCOMMIT): each statement sees the latest commit, even on a connection held for a
    whole request, and holds no snapshot (nor, on SQLite, a WAL read mark) between them."""
    from geo.store import held_connections, read_connection

    key = "test:autocommit"
    with held_connections():
        with read_connection(store_engine) as conn:
            before = conn.execute(
                sa.text("SELECT count(*) FROM store_meta WHERE key = :k"), {"k": key}
            ).scalar_one()
            driver = conn.connection.driver_connection
            if store_engine.dialect.name == "sqlite":
                assert driver.in_transaction is False  # no BEGIN was sent
            else:
                from psycopg.pq import TransactionStatus

                assert driver.info.transaction_status == TransactionStatus.IDLE
        with transaction(store_engine) as w:
            w.execute(
                _INSERT_META,
                {"k": key},
            )
        try:
            with read_connection(store_engine) as conn:
                after = conn.execute(
                    sa.text("SELECT count(*) FROM store_meta WHERE key = :k"), {"k": key}
                ).scalar_one()
            assert (before, after) == (0, 1)
        finally:
            with transaction(store_engine) as w:
                w.execute(sa.text("DELETE FROM store_meta WHERE key = :k"), {"k": key})


def test_writes_still_run_in_one_transaction(store_engine):
    """Skipping BEGIN is for reads only: a write transaction that fails leaves nothing."""
    key = "test:atomic"
    with pytest.raises(RuntimeError), transaction(store_engine) as w:
        w.execute(
            _INSERT_META,
            {"k": key},
        )
        raise RuntimeError("half way")
    with store_engine.connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM store_meta WHERE key = :k"), {"k": key}
            ).scalar_one()
            == 0
        )


def test_each_store_keeps_each_geometrys_text_and_its_pages_send_it(backend):
    """Each store keeps each geometry's GeoJSON text with the row (migration 0010) and its
    pages and features send it (promoted to MultiPoint on the text); with the texts removed
    they are encoded from the WKB into the same bytes (SQLite; on PostgreSQL PostGIS writes
    them, the same GeoJSON, its numbers in their shortest form)."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from geo.interventions.model import TOPIC
    from geo.interventions.store import interventions_table as it
    from geo.ogc.encode import stored_geometry_texts
    from geo.store import bump_revision

    with backend.connect() as conn:
        rows = conn.execute(sa.select(it.c.id, it.c.geometry_wkb, it.c.geometry_json)).all()
    texts = [r.geometry_json for r in rows]
    assert texts == stored_geometry_texts(shapely.from_wkb([r.geometry_wkb for r in rows]))
    assert all(texts)
    first = rows[0].id
    urls = [
        "/collections/interventions/items?f=json&limit=200",
        f"/collections/interventions/items/{first}?f=json",
        "/collections/interventions/items?f=json&bbox=8.9,45.3,9.4,45.6",
    ]

    def put(values: list[dict[str, object]]) -> None:
        stmt = (
            it.update().where(it.c.id == sa.bindparam("b")).values(geometry_json=sa.bindparam("t"))
        )
        with transaction(backend) as conn:
            conn.execute(stmt, values)
            bump_revision(conn, TOPIC)

    with TestClient(create_app()) as client:
        before = [client.get(u) for u in urls]
        try:
            put([{"b": r.id, "t": None} for r in rows])
            from_wkb = [client.get(u) for u in urls]
            put([{"b": first, "t": '{"type":"Point","coordinates":[1.5,2.5]}'}])
            marked = client.get(urls[1]).json()["geometry"]
        finally:
            put([{"b": r.id, "t": r.geometry_json} for r in rows])
    assert [r.status_code for r in before + from_wkb] == [200] * 6
    if backend.dialect.name == "sqlite":
        assert before[1].content == from_wkb[1].content
    assert before[1].json() == from_wkb[1].json()
    for b, w in zip(before[::2], from_wkb[::2], strict=True):
        assert b.json()["features"] == w.json()["features"] and b.json()["features"]
    assert marked == {"type": "MultiPoint", "coordinates": [[1.5, 2.5]]}  # the text is sent


def test_a_geometry_changed_by_another_program_is_sent_as_it_now_is(backend):
    """A program that updates a row's WKB alone (plain SQL, QGIS on the table) leaves no
    stale GeoJSON text behind (migration 0013): the feature and the layer's page send the
    new shape; the service's own writes keep a text again."""
    import json

    from fastapi.testclient import TestClient

    from api.main import create_app
    from geo.interventions.model import TOPIC
    from geo.layers.store import TOPIC as LAYERS
    from geo.store import bump_revision, transaction

    admin = {"Authorization": "Bearer test-admin-token"}
    square = shapely.geometry.mapping(shapely.box(9.0, 45.3, 9.01, 45.31))
    upload = json.dumps(
        {
            "type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": {"n": 1}, "geometry": square}],
        }
    ).encode()
    texts_sql = sa.text(
        "SELECT geometry_json FROM interventions WHERE id = :i UNION ALL "
        "SELECT geometry_json FROM layer_features WHERE layer_id = :l AND fid = 1"
    )
    with TestClient(create_app()) as client:
        r = client.post(
            "/layers",
            files={"file": ("guard.geojson", upload)},
            data={"name": "Guardia"},
            headers=admin,
        )
        assert r.status_code in (200, 201), r.text
        lid = r.json()["id"]
        fid = client.get("/collections/interventions/items?f=json&limit=1").json()["features"]
        fid = fid[0]["id"]
        with backend.connect() as conn:
            wkb, text = conn.execute(
                sa.text("SELECT geometry_wkb, geometry_json FROM interventions WHERE id = :i"),
                {"i": fid},
            ).one()
            assert [t is not None for t in conn.execute(texts_sql, {"i": fid, "l": lid})] == [
                True,
                True,
            ]
        try:
            with transaction(backend) as conn:  # another program: the WKB alone
                conn.execute(
                    sa.text("UPDATE interventions SET geometry_wkb = :w WHERE id = :i"),
                    {"w": shapely.to_wkb(shapely.Point(9.123456, 45.456789)), "i": fid},
                )
                conn.execute(
                    sa.text(
                        "UPDATE layer_features SET geometry_wkb = :w "
                        "WHERE layer_id = :l AND fid = 1"
                    ),
                    {"w": shapely.to_wkb(shapely.box(9.1, 45.4, 9.11, 45.41)), "l": lid},
                )
                bump_revision(conn, TOPIC)
                bump_revision(conn, LAYERS)
            with backend.connect() as conn:
                assert list(conn.execute(texts_sql, {"i": fid, "l": lid}).scalars()) == [
                    None,
                    None,
                ]
            one = client.get(f"/collections/interventions/items/{fid}?f=json").json()
            assert one["geometry"]["coordinates"] == [[9.123456, 45.456789]]
            page = client.get(f"/collections/{lid}/items?f=json").json()["features"]
            got = shapely.geometry.shape(page[0]["geometry"])
            assert got.normalize().equals(shapely.box(9.1, 45.4, 9.11, 45.41).normalize())
            moved = shapely.geometry.mapping(shapely.box(9.2, 45.4, 9.21, 45.41))
            r = client.patch(f"/collections/{lid}/items/1", json={"geometry": moved}, headers=admin)
            assert r.status_code == 200, r.text
            with backend.connect() as conn:
                kept = list(conn.execute(texts_sql, {"i": fid, "l": lid}).scalars())[1]
            assert kept is not None and "9.21" in kept  # the service's write: a text again
        finally:
            with transaction(backend) as conn:  # the intervention as it was, text and all
                conn.execute(
                    sa.text(
                        "UPDATE interventions SET geometry_wkb = :w, geometry_json = :t "
                        "WHERE id = :i"
                    ),
                    {"w": wkb, "t": text, "i": fid},
                )
                bump_revision(conn, TOPIC)
            client.delete(f"/layers/{lid}", headers=admin)
        with backend.connect() as conn:
            restored = conn.execute(
                sa.text("SELECT geometry_json FROM interventions WHERE id = :i"), {"i": fid}
            ).scalar_one()
        assert restored == text  # both set together: the trigger leaves the text


def test_the_store_keeps_each_interventions_properties_and_its_pages_send_them(backend):
    """Each written intervention keeps its properties as the JSON text a page builds
    (migration 0011), made in the writing transaction by the page's own SQL (PostgreSQL: a
    trigger) or its select and Python half (SQLite); pages send it (a marked text shows),
    and with the texts removed build the same bytes. A new layout (the properties' SQL or
    the territory changed) removes them all; a row updated by another program (plain SQL)
    is sent as it now is."""
    from fastapi.testclient import TestClient

    import geo.interventions.sql_collection as sc
    from api.main import create_app
    from geo.interventions.model import TOPIC
    from geo.interventions.store import interventions_table as it
    from geo.store import bump_revision, set_meta
    from geo.territory import get_territory

    headers = {"Authorization": "Bearer test-admin-token"}
    new = {
        "type": "Feature",
        "id": "kept-props-1",
        "geometry": {"type": "Point", "coordinates": [9.19, 45.46]},
        "properties": {"title": "Intervento con \"virgolette\" e àccenti", "programme": "PUI MICA",
                       "amount_eur": 1234.5, "comuni": ["015146", "015182"]},
    }  # fmt: skip
    c = it.c
    kept = sa.select(c.properties_json).where(c.id == "kept-props-1")
    with TestClient(create_app()) as client:
        sc._layouts.clear()  # as in a process that has served no page: the write checks it
        r = client.post("/collections/interventions/items", json=new, headers=headers)
        assert r.status_code == 201, r.text
        item = "/collections/interventions/items/kept-props-1?f=json"
        page = "/collections/interventions/items?f=json&bbox=9.18,45.45,9.2,45.47&limit=500"
        try:
            with backend.connect() as conn:
                text = conn.execute(kept).scalar_one()
                assert text is not None and text == _built_properties(conn, "kept-props-1")
            before = [client.get(item), client.get(page)]

            def put(value: str | None) -> None:
                with transaction(backend) as conn:
                    conn.execute(
                        it.update().where(c.id == "kept-props-1").values(properties_json=value)
                    )
                    bump_revision(conn, TOPIC)

            put(None)
            after = [client.get(item), client.get(page)]
            put('{"marked":true}')
            assert client.get(item).json()["properties"] == {"marked": True}
            assert before[0].content == after[0].content
            assert before[1].json()["features"] == after[1].json()["features"]
            names = [get_territory().comuni[code].name for code in ("015146", "015182")]
            assert before[0].json()["properties"]["comuni_names"] == names
            # Another layout: every kept text goes.
            with transaction(backend) as conn:
                set_meta(conn, sc.LAYOUT_KEY, "an older layout")
            sc._layouts.clear()
            sc.ensure_properties_layout(backend)
            with backend.connect() as conn:
                left = conn.execute(
                    sa.select(sa.func.count()).where(c.properties_json.is_not(None))
                ).scalar_one()
            assert left == 0
            assert client.get(item).content == before[0].content
            # The next write of the row keeps its text again (the trigger, reinstalled).
            r = client.patch(
                "/collections/interventions/items/kept-props-1",
                json={"properties": {"title": "Titolo nuovo"}},
                headers=headers,
            )
            assert r.status_code == 200, r.text
            with backend.connect() as conn:
                text = conn.execute(kept).scalar_one()
                assert text == _built_properties(conn, "kept-props-1")
            assert '"title":"Titolo nuovo"' in text
            # Another program updates the row: its page is the row as it now is.
            with transaction(backend) as conn:
                conn.exec_driver_sql(
                    "UPDATE interventions SET title = 'Da fuori', amount_eur = 7.25 "
                    "WHERE id = 'kept-props-1'"
                )
                bump_revision(conn, TOPIC)
            got = client.get(item).json()["properties"]
            assert (got["title"], got["amount_eur"]) == ("Da fuori", 7.25)
            assert got["comuni_names"] == names
        finally:
            client.delete("/collections/interventions/items/kept-props-1", headers=headers)


def _built_properties(conn, fid: str) -> str:
    """The properties' text a page builds for intervention ``fid`` when none is kept."""
    import geo.interventions.sql_collection as sc
    from geo.interventions.store import interventions_table as it

    if conn.dialect.name == "sqlite":
        spec = sc._sqlite_spec(sc._all_names(), skip_geometry=True)
        rows = conn.execute(spec.select.where(it.c.id == fid)).all()
        return spec.properties_texts(rows)[0][1]
    live = sa.select(sa.literal_column(sc._kept(conn.engine)[0])).select_from(it)
    return conn.execute(live.where(it.c.id == fid)).scalar_one()


def test_keep_texts_builds_the_missing_properties_texts_on_both_stores(backend):
    """``cmm-geo db keep-texts`` (``keep_all_properties``): after the texts went (an upgrade,
    a new territory), it builds every missing one, in chunks, the same text a page builds;
    a second run has nothing to do."""
    from typer.testing import CliRunner

    import geo.interventions.sql_collection as sc
    from geo.cli import app
    from geo.interventions.store import interventions_table as it

    c = it.c
    missing = sa.select(sa.func.count()).where(c.properties_json.is_(None))
    sc.ensure_properties_layout(backend)

    def clear() -> int:
        with transaction(backend) as conn:
            conn.execute(it.update().values(properties_json=None))
            return conn.execute(sa.select(sa.func.count()).select_from(it)).scalar_one()

    total = clear()
    assert total >= 100
    assert sc.keep_all_properties(backend, chunk=7) == total  # in chunks of 7 rows
    with backend.connect() as conn:
        assert conn.execute(missing).scalar_one() == 0
    clear()
    result = CliRunner().invoke(app, ["db", "keep-texts"])
    assert result.exit_code == 0, result.output
    assert f"kept the properties' text of {total:,} interventions" in result.output
    with backend.connect() as conn:
        assert conn.execute(missing).scalar_one() == 0
        for fid, text in conn.execute(sa.select(c.id, c.properties_json).limit(5)):
            assert text == _built_properties(conn, fid)
    assert sc.keep_all_properties(backend) == 0


def test_a_new_sqlite_store_seeds_interventions_that_keep_their_texts(tmp_path):
    """The documented interventions seeded into a new embedded store keep their properties'
    text from the start (the layout is checked before the seed writes them), so their
    pages send it as it is: none is left for ``cmm-geo db keep-texts``."""
    import geo.interventions.sql_collection as sc
    from geo.interventions.store import get_store
    from geo.interventions.store import interventions_table as it
    from geo.store import get_engine

    engine = get_store(get_engine(f"sqlite:///{(tmp_path / 'new.sqlite').as_posix()}"))
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(it)).scalar_one()
        rows = conn.execute(sa.select(it.c.id, it.c.properties_json).limit(7)).all()
        assert total >= 100
        assert all(text == _built_properties(conn, fid) for fid, text in rows)
    assert sc.keep_all_properties(engine) == 0
    engine.dispose()
