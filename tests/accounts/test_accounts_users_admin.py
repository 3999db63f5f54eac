"""An admin changes a user's role and comuni, and deletes users (issue 11), over HTTP in
process on both backends; the last enabled admin is kept, in the store, even when two
admins demote themselves at the same moment."""

from __future__ import annotations

import re
import threading

import pytest
from accounts_helpers import PASSWORD, new_client, sign_in

from geo.accounts import users
from geo.errors import NotFound
from tests.sql_differential import fresh_engine


def _edit(client, name: str, token: str | None, *, role: str = "editor", comuni=(), lang=""):
    data: dict = {"role": role, "comuni": list(comuni)}
    if token is not None:
        data["csrf_token"] = token
    return client.post(f"/app/users/{name}/edit{lang}", data=data)


def _field_error(html: str, field: str) -> str:
    m = re.search(rf'<span class="acc-field-error" id="err-{field}">([^<]*)</span>', html)
    assert m, html[:500]
    return m.group(1)


# ----- role and comuni ----------------------------------------------------------------------


def test_admin_changes_role_and_comuni(signed_in, make_user):
    admin, _, token = signed_in(admin=True)
    name = make_user(comuni=("Rho",))
    them = new_client()
    assert sign_in(them, name).status_code == 303
    assert them.get("/app/users").status_code == 403  # an editor

    page = admin.get("/app/users")
    assert f'href="/app/users/{name}/edit"' in page.text
    form = admin.get(f"/app/users/{name}/edit")
    assert form.status_code == 200 and form.headers["cache-control"] == "no-store"
    assert re.search(r'<option value="015182" selected>Rho</option>', form.text)
    assert re.search(r'value="editor" checked', form.text)

    # Without the form's CSRF token nothing changes.
    for bad in (None, "", "x" * 43):
        r = _edit(admin, name, bad, comuni=["015146"])
        assert r.status_code == 403 and "Il modulo è scaduto" in r.text
    assert users.get_user(name).comuni == ("015182",)

    r = _edit(admin, name, token, comuni=["015146", "015182"])
    assert r.status_code == 303
    assert r.headers["location"] == f"/app/users?done=updated&name={name}"
    assert users.get_user(name).comuni == ("015146", "015182")
    assert f"Utente {name} aggiornato." in admin.get(r.headers["location"]).text

    r = _edit(admin, name, token, role="admin", comuni=["015146"])
    assert r.status_code == 303
    promoted = users.get_user(name)
    assert promoted.admin and promoted.comuni == ()
    # Rights follow at the user's next request, with the same session.
    assert them.get("/app/users").status_code == 200
    assert them.get("/app/session").json()["user"]["admin"] is True


def test_role_form_errors_beside_their_field_in_both_languages(signed_in, make_user):
    admin, _, token = signed_in(admin=True)
    name = make_user(comuni=("Rho",))
    r = _edit(admin, name, token, comuni=[])
    assert r.status_code == 422
    assert _field_error(r.text, "comuni") == "Un editor ha bisogno di almeno un comune."
    assert 'aria-invalid="true" aria-describedby="err-comuni edit-comuni-help"' in r.text
    r = _edit(admin, name, token, comuni=["Atlantide"])
    assert r.status_code == 422
    assert _field_error(r.text, "comuni") == "Comune sconosciuto: «Atlantide»."
    evil = "<script>alert(1)</script>"
    r = _edit(admin, name, token, comuni=[evil])
    assert r.status_code == 422 and evil not in r.text and "&lt;script&gt;alert(1)" in r.text
    r = _edit(admin, name, token, comuni=[], lang="?lang=en")
    assert r.status_code == 422 and r.headers["content-language"] == "en"
    assert _field_error(r.text, "comuni") == "an editor needs at least one comune"
    admin.cookies.delete("lang")
    assert users.get_user(name).comuni == ("015182",)  # nothing changed


def test_edit_and_delete_are_for_admins_only(signed_in, make_user):
    editor, _, token = signed_in()
    name = make_user(comuni=("Rho",))
    assert editor.get(f"/app/users/{name}/edit").status_code == 403
    r = _edit(editor, name, token, role="admin")
    assert r.status_code == 403 and "Solo un amministratore" in r.text
    r = editor.post(f"/app/users/{name}/delete", data={"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 403
    assert not users.get_user(name).admin
    anonymous = new_client()
    r = anonymous.get(f"/app/users/{name}/edit")
    assert r.status_code == 303
    assert r.headers["location"] == f"/app/login?next=/app/users/{name}/edit"
    r = anonymous.post(f"/app/users/{name}/delete", data={"confirm": "yes"})
    assert r.status_code == 303 and users.get_user(name)


def test_unknown_users_are_404_pages(signed_in):
    admin, _, token = signed_in(admin=True)
    r = admin.get("/app/users/nessuno-qui/edit")
    assert r.status_code == 404 and "Utente inesistente." in r.text
    r = admin.get("/app/users/%3Cb%3Ex%3C%2Fb%3E/edit")
    assert r.status_code == 404 and "<b>x</b>" not in r.text
    r = _edit(admin, "nessuno-qui", token, comuni=["Rho"])
    assert r.status_code == 404
    r = admin.post("/app/users/nessuno-qui/delete", data={"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 404 and "Utente inesistente." in r.text


# ----- deletion -----------------------------------------------------------------------------


def test_delete_asks_first_then_ends_the_users_sessions(signed_in, make_user):
    admin, _, token = signed_in(admin=True)
    name = make_user(comuni=("Rho",), display_name="Ufficio <i>tecnico</i>")
    them = new_client()
    assert sign_in(them, name).status_code == 303
    assert them.get("/app/session").json()["user"]["username"] == name

    r = admin.post(f"/app/users/{name}/delete", data={"csrf_token": token})
    assert r.status_code == 200 and f"Eliminare l&#39;utente {name}?" in r.text
    assert "Ufficio &lt;i&gt;tecnico&lt;/i&gt;" in r.text and "<i>tecnico" not in r.text
    assert 'name="confirm" value="yes"' in r.text
    assert users.get_user(name)  # asked, not done
    r = admin.post(f"/app/users/{name}/delete", data={"confirm": "yes"})
    assert r.status_code == 403 and users.get_user(name)  # no CSRF token, no deletion

    r = admin.post(f"/app/users/{name}/delete", data={"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 303
    assert r.headers["location"] == f"/app/users?done=deleted&name={name}"
    with pytest.raises(NotFound):
        users.get_user(name)
    assert them.get("/app/session").json() == {"user": None}
    page = admin.get(r.headers["location"]).text
    assert f"Utente {name} eliminato." in page and f"/app/users/{name}/edit" not in page
    # No "deleted" notice for a user who exists, nor for what cannot be a user name.
    other = make_user()
    assert "eliminato." not in admin.get(f"/app/users?done=deleted&name={other}").text
    assert "eliminato." not in admin.get("/app/users?done=deleted&name=%3Cb%3Ex").text


def test_nobody_deletes_or_demotes_themselves_out_of_the_last_admin(signed_in, make_user):
    admin, me, token = signed_in(admin=True)
    page = admin.get("/app/users").text
    assert f'action="/app/users/{me}/delete"' not in page  # no button for oneself
    r = admin.post(f"/app/users/{me}/delete", data={"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 422 and "Non puoi eliminare il tuo stesso utente." in r.text
    r = admin.post(f"/app/users/{me}/delete?lang=en", data={"csrf_token": token, "confirm": "yes"})
    assert r.status_code == 422 and "You cannot delete yourself." in r.text
    admin.cookies.delete("lang")  # the English page remembered the choice
    assert users.get_user(me).admin
    # With another enabled admin, an admin may step down to editor.
    make_user(admin=True)
    r = _edit(admin, me, token, comuni=["Rho"])
    assert r.status_code == 200 and "Ora sei editor di Rho" in r.text
    me_now = users.get_user(me)
    assert not me_now.admin and me_now.comuni == ("015182",)
    assert admin.get("/app/users").status_code == 403


# ----- the last enabled admin, in the store -------------------------------------------------


@pytest.fixture(params=["sqlite", "postgis"])
def lone_store(request, tmp_path_factory):
    """A fresh store of its own (the shared one holds many admins)."""
    engine, drop = fresh_engine(request.param, request, tmp_path_factory, "acc_admins")
    yield engine
    drop()


def test_the_last_enabled_admin_is_kept(lone_store):
    e = lone_store
    users.create_user("anna", PASSWORD, admin=True, engine=e)
    for change in (
        lambda: users.set_role("anna", admin=False, comuni=["Rho"], keep_an_admin=True, engine=e),
        lambda: users.set_disabled("anna", keep_an_admin=True, engine=e),
        lambda: users.delete_user("anna", keep_an_admin=True, engine=e),
    ):
        with pytest.raises(users.LastAdmin) as refused:
            change()
        assert refused.value.status == 409 and refused.value.extra["reason"] == "last_admin"
    assert users.get_user("anna", engine=e).admin
    # A disabled admin does not count; an enabled one does.
    users.create_user("bruno", PASSWORD, admin=True, engine=e)
    users.set_disabled("bruno", engine=e)
    with pytest.raises(users.LastAdmin):
        users.set_role("anna", admin=False, comuni=["Rho"], keep_an_admin=True, engine=e)
    users.set_disabled("bruno", False, engine=e)
    users.set_role("anna", admin=False, comuni=["Rho"], keep_an_admin=True, engine=e)
    assert users.count_admins(engine=e) == 1
    with pytest.raises(users.LastAdmin):
        users.delete_user("bruno", keep_an_admin=True, engine=e)
    # The command line (no keep_an_admin) stays the operator's way out.
    users.set_disabled("bruno", engine=e)
    assert users.count_admins(engine=e) == 0


def _step_down(engine, name: str, barrier: threading.Barrier, outcome: dict[str, str]) -> None:
    barrier.wait()
    try:
        users.set_role(name, admin=False, comuni=["Rho"], keep_an_admin=True, engine=engine)
        outcome[name] = "demoted"
    except users.LastAdmin:
        outcome[name] = "refused"


def test_two_admins_stepping_down_at_once_leave_one(lone_store):
    e = lone_store
    for round_ in range(4):
        names = [f"a{round_}-x", f"a{round_}-y"]
        for n in names:
            users.create_user(n, PASSWORD, admin=True, engine=e)
        for u in users.list_users(engine=e):
            if u.username not in names:
                users.set_disabled(u.username, engine=e)
        barrier = threading.Barrier(2)
        outcome: dict[str, str] = {}
        threads = [
            threading.Thread(target=_step_down, args=(e, n, barrier, outcome)) for n in names
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert sorted(outcome.values()) == ["demoted", "refused"], outcome
        assert users.count_admins(engine=e) == 1
