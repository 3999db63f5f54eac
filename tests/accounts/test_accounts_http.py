"""Security of the sign-in and editing pages over HTTP (in process, both backends):
CSRF on every form, rights of editors (app and API), rate-limited sign-in, no open
redirect, cookie flags, escaping of every user string."""

from __future__ import annotations

import re

import pytest
from accounts_helpers import PASSWORD, csrf_in, new_client, sign_in

from api.main import create_app
from geo.settings import Settings

ITEMS = "/collections/interventions/items"
RHO_POINT = {"type": "Point", "coordinates": [9.0468, 45.5276]}


def _form(title: str = "Pista ciclabile", **extra) -> dict:
    data = {
        "title": title,
        "programme": "Biciplan",
        "comuni": "015182",
        "placement": "map",
        "geometry": '{"type":"Point","coordinates":[9.0468,45.5276]}',
        "amount_eur": "",
    }
    data.update(extra)
    return data


def _create_as_admin(fid: str, comune: str = "Milano", title: str = "Opera") -> None:
    from geo import interventions as iv

    iv.create_feature(
        {
            "type": "Feature",
            "id": fid,
            "geometry": None,
            "properties": {"title": title, "programme": "PINQUA", "comuni": comune},
        }
    )


# ----- CSRF ---------------------------------------------------------------------------------


def test_every_form_is_refused_without_its_csrf_token(signed_in, make_user):
    admin, _, token = signed_in(admin=True)
    _create_as_admin("csrf-1")
    other = make_user()
    posts = [
        ("/app/logout", {}),
        (
            "/app/users",
            {"action": "create", "username": "csrf-made", "password": PASSWORD, "role": "admin"},
        ),
        ("/app/users", {"action": "disable", "username": other}),
        ("/app/interventions/new", _form(id="csrf-new")),
        ("/app/interventions/csrf-1/edit", _form(title="Cambiato")),
        ("/app/interventions/csrf-1/delete", {"confirm": "yes"}),
    ]
    for path, data in posts:
        for bad in (None, "", "x" * 43, token[:-1] + ("A" if token[-1] != "A" else "B")):
            body = dict(data) if bad is None else {**data, "csrf_token": bad}
            r = admin.post(path, data=body)
            assert r.status_code == 403, (path, bad, r.status_code)
            assert "Il modulo è scaduto" in r.text
    for path in ("/app/layers/new", "/app/layers/inspect"):
        files = {"file": ("a.geojson", b'{"type":"FeatureCollection","features":[]}')}
        r = admin.post(path, files=files, headers={"Accept": "application/json"})
        assert r.status_code == 403, path
        r = admin.post(path, files=files, headers={"X-CSRF-Token": "nope"})
        assert r.status_code == 403, path
    # Nothing happened: still signed in, no user made, the intervention unchanged.
    assert admin.get("/app/session").json()["user"] is not None
    from geo import interventions as iv
    from geo.accounts import users

    assert "csrf-made" not in {u.username for u in users.list_users()}
    assert not users.get_user(other).disabled
    assert iv.get_feature("csrf-1")["properties"]["title"] == "Opera"
    assert iv.get_feature("csrf-new") is None
    # With the token the same forms work.
    r = admin.post(
        "/app/interventions/csrf-1/edit",
        data=_form("Cambiato", csrf_token=token, comuni="015146", placement="comune", geometry=""),
    )
    assert r.status_code == 303, r.text
    assert iv.get_feature("csrf-1")["properties"]["title"] == "Cambiato"


def test_login_form_needs_its_pre_session_token(backend, make_user):
    name = make_user()
    c = new_client()
    page = c.get("/app/login")
    assert page.status_code == 200
    r = c.post("/app/login", data={"username": name, "password": PASSWORD})
    assert r.status_code == 403 and "cmmgeo_session" not in r.headers.get("set-cookie", "")
    stranger = new_client()  # a token from another browser's page does not fit this one
    token = csrf_in(stranger.get("/app/login").text)
    r = c.post("/app/login", data={"username": name, "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 403
    assert sign_in(c, name).status_code == 303


def test_json_api_with_the_session_cookie_needs_x_csrf_token(signed_in):
    editor, _, token = signed_in(comuni=("Rho",))
    feat = {
        "type": "Feature",
        "id": "cookie-1",
        "geometry": RHO_POINT,
        "properties": {"title": "Via cookie", "programme": "PINQUA"},
    }
    assert editor.post(ITEMS, json=feat).status_code == 403
    assert editor.post(ITEMS, json=feat, headers={"X-CSRF-Token": "bad"}).status_code == 403
    r = editor.post(ITEMS, json=feat, headers={"X-CSRF-Token": token})
    assert r.status_code == 201, r.text
    assert new_client().post(ITEMS, json=feat).status_code == 401  # no cookie: 401 as before
    r = editor.patch(
        f"{ITEMS}/cookie-1",
        json={"properties": {"status": "avviato"}},
        headers={"X-CSRF-Token": token},
    )
    assert r.status_code == 200 and r.json()["properties"]["status"] == "avviato"
    assert editor.delete(f"{ITEMS}/cookie-1").status_code == 403
    assert editor.delete(f"{ITEMS}/cookie-1", headers={"X-CSRF-Token": token}).status_code == 204


# ----- rights -------------------------------------------------------------------------------


def test_editor_cannot_change_another_comunes_intervention(signed_in):
    _create_as_admin("milano-1", "Milano", "Di Milano")
    editor, _, token = signed_in(comuni=("Rho",))
    assert editor.get("/app/interventions/milano-1/edit").status_code == 403
    r = editor.post("/app/interventions/milano-1/edit", data=_form("Preso", csrf_token=token))
    assert r.status_code == 403
    r = editor.post(
        "/app/interventions/milano-1/delete", data={"csrf_token": token, "confirm": "yes"}
    )
    assert r.status_code == 403
    # Nor moving one of theirs into Milano, nor creating one there.
    r = editor.post(
        "/app/interventions/new",
        data=_form(
            id="rho-to-milano", csrf_token=token, comuni="015146", placement="comune", geometry=""
        ),
    )
    assert r.status_code == 403 and "solo interventi che si trovano nei tuoi comuni" in r.text
    # Through the JSON API with the cookie: 403 too.
    h = {"X-CSRF-Token": token}
    r = editor.patch(f"{ITEMS}/milano-1", json={"properties": {"title": "x"}}, headers=h)
    assert r.status_code == 403
    assert editor.delete(f"{ITEMS}/milano-1", headers=h).status_code == 403
    from geo import interventions as iv

    assert iv.get_feature("milano-1")["properties"]["title"] == "Di Milano"
    assert iv.get_feature("rho-to-milano") is None
    # Only their comuni are offered in the form.
    page = editor.get("/app/interventions/new").text
    assert re.findall(r'<option value="(\d{6})"', page) == ["015182"]


def test_users_page_is_for_admins_only(signed_in):
    editor, _, token = signed_in()
    assert editor.get("/app/users").status_code == 403
    r = editor.post(
        "/app/users",
        data={
            "csrf_token": token,
            "action": "create",
            "username": "sneaky",
            "password": PASSWORD,
            "role": "admin",
        },
    )
    assert r.status_code == 403
    anonymous = new_client()
    r = anonymous.get("/app/users")
    assert r.status_code == 303 and r.headers["location"] == "/app/login?next=/app/users"


def test_pages_need_a_session(backend):
    c = new_client()
    for path in (
        "/app/interventions/new",
        "/app/interventions/doc-001/edit",
        "/app/interventions/doc-001/history",
        "/app/layers/new",
    ):
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/app/login?next=/app/")
    assert c.post("/app/interventions/new", data=_form()).status_code == 303
    assert c.get("/app/session").json() == {"user": None}


# ----- sign-in ------------------------------------------------------------------------------


def test_wrong_passwords_are_rate_limited(backend, make_user):
    from geo.accounts.config import get_account_settings

    name = make_user()
    c = new_client()
    for _ in range(get_account_settings().login_max_failures):
        r = sign_in(c, name, "wrong password!")
        assert r.status_code == 401 and "Nome utente o password errati" in r.text
    r = sign_in(c, name, "wrong password!")
    assert r.status_code == 429
    assert 0 < int(r.headers["Retry-After"]) <= 15 * 60
    assert "Troppi tentativi" in r.text
    r = sign_in(c, name)  # even the right password waits
    assert r.status_code == 429 and "cmmgeo_session" not in r.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/%0d%0aSet-Cookie:x=1",
        "/\r\nLocation: https://evil.example",
        "http:/evil.example",
        "",
        "evil.example",
    ],
)
def test_no_open_redirect_after_sign_in(backend, make_user, target):
    c = new_client()
    r = sign_in(c, make_user(), next_url=target)
    assert r.status_code == 303
    assert r.headers["location"] in ("/", "/%0d%0aSet-Cookie:x=1")
    assert "set-cookie:x" not in r.headers.get("set-cookie", "").lower()


def test_next_within_the_site_is_kept(backend, make_user):
    r = sign_in(new_client(), make_user(), next_url="/app/interventions/new?x=1")
    assert r.headers["location"] == "/app/interventions/new?x=1"


def test_cookie_flags_and_sign_out(backend, make_user):
    name = make_user()
    c = new_client()
    r = sign_in(c, name)
    cookie = next(
        v
        for k, v in r.headers.multi_items()
        if k == "set-cookie" and v.startswith("cmmgeo_session=")
    )
    flags = {p.strip().lower() for p in cookie.split(";")[1:]}
    assert {"httponly", "path=/", "samesite=lax"} <= flags and "secure" not in flags
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) >= 43
    session = c.get("/app/session").json()
    assert session["user"]["username"] == name
    r = c.post("/app/logout", data={"csrf_token": session["csrf_token"]})
    assert r.status_code == 303
    assert c.get("/app/session").json() == {"user": None}
    again = new_client()  # the old cookie value no longer opens anything
    again.cookies.set("cmmgeo_session", value)
    assert again.get("/app/session").json() == {"user": None}


def test_cookie_is_secure_behind_https(backend, make_user):
    name = make_user()
    app = create_app(Settings(base_url="https://gis.example.it"))
    r = sign_in(new_client(app, base_url="https://testserver"), name)
    assert "secure" in r.headers["set-cookie"].lower()
    # Behind a trusted proxy that says HTTPS (X-Forwarded-Proto), cookies are Secure too;
    # the same header from anyone else does not count.
    proxied = create_app(Settings(trusted_proxies="testclient"))
    r = new_client(proxied).get("/app/login", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in r.headers["set-cookie"].lower()
    r = new_client().get("/app/login", headers={"X-Forwarded-Proto": "https"})
    assert "secure" not in r.headers["set-cookie"].lower()


# ----- escaping -----------------------------------------------------------------------------

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_every_user_string_is_escaped(signed_in):
    admin, _, token = signed_in(admin=True, display_name=EVIL)
    for path in ("/app/users", "/app/interventions/new", "/app/layers/new"):
        page = admin.get(path).text
        assert EVIL not in page and "&lt;script&gt;alert(" in page, path
    r = admin.post("/app/interventions/new", data=_form(EVIL, id="xss-1", csrf_token=token))
    assert r.status_code == 303, r.text
    for path in ("/app/interventions/xss-1/edit", "/app/interventions/xss-1/history"):
        page = admin.get(path).text
        assert EVIL not in page and "&lt;script&gt;alert(" in page, path
    # A rejected form echoes what was typed, escaped.
    r = admin.post("/app/interventions/new", data=_form(EVIL, programme="", csrf_token=token))
    assert r.status_code == 422 and EVIL not in r.text and "&lt;img src=x" in r.text
    # The login page echoes the user name typed, escaped.
    c = new_client()
    r = sign_in(c, '"><script>alert(1)</script>', "wrong password!")
    assert r.status_code == 401 and "<script>alert(1)" not in r.text
    # The users page shows the display name escaped and refuses markup in user names.
    r = admin.post(
        "/app/users",
        data={
            "csrf_token": token,
            "action": "create",
            "username": "<b>x</b>",
            "password": PASSWORD,
            "role": "admin",
        },
    )
    assert r.status_code == 422 and "<b>x</b>" not in r.text and "&lt;b&gt;x&lt;/b&gt;" in r.text


def test_form_errors_beside_their_fields(signed_in):
    admin, _, token = signed_in(admin=True)
    r = admin.post(
        "/app/interventions/new",
        data=_form(
            "", id="errs-1", csrf_token=token, amount_eur="tanti", source_url="ftp://x", cup="123"
        ),
    )
    assert r.status_code == 422
    for field, text in (
        ("title", "Il titolo è obbligatorio."),
        ("amount_eur", "Non è un numero"),
        ("source_url", "Non è un indirizzo web"),
        ("cup", "Un CUP ha 15 lettere"),
    ):
        m = re.search(rf'<span class="acc-field-error" id="err-{field}">([^<]*)</span>', r.text)
        assert m and text in m.group(1), (field, r.text[:300])
        assert f'aria-describedby="err-{field}' in r.text
    assert 'value="tanti"' in r.text  # what was typed stays
    english = admin.post(
        "/app/interventions/new?lang=en", data=_form("", id="errs-1", csrf_token=token)
    )
    assert english.status_code == 422 and "missing title" in english.text
