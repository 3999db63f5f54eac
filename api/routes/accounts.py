"""Sign-in, sign-out, the session for scripts, and the users' page (admins).

``GET /app/session`` tells the map application who is signed in (and the CSRF token its
scripts send as ``X-CSRF-Token``); ``/app/login`` signs in (rate-limited, ``next`` only
to a path of this site), ``POST /app/logout`` signs out, ``/app/users`` lets an admin
create, disable and enable users, ``/app/users/{name}/edit`` change one's role and comuni,
``POST /app/users/{name}/delete`` delete one (after a confirmation page). The last enabled
admin can be neither demoted, disabled nor deleted from here, and nobody deletes or
disables themselves. The pages are server-rendered (``geo.accounts.pages``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.responses import json_response
from api.session import (
    CSRF_FIELD,
    PRE_COOKIE,
    SESSION_COOKIE,
    CsrfFailed,
    check_csrf,
    clear_cookie,
    client_address,
    current_session,
    form_status,
    form_value,
    lang_of,
    read_urlencoded,
    session_json,
    set_cookie,
)
from geo.accounts import pages, sessions, users
from geo.accounts.config import get_account_settings
from geo.accounts.messages import exc_text, t
from geo.accounts.ratelimit import TooManyAttempts
from geo.errors import GeoError, NotFound

router = APIRouter(include_in_schema=False)
PRE_MAX_AGE = 2 * 3600


# ----- shared by the pages ------------------------------------------------------------------


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this site, else ``/`` (no open redirect)."""
    v = (value or "").strip()
    if (
        not v.startswith("/")
        or v.startswith(("//", "/\\"))
        or "\\" in v
        or len(v) > 2000
        or any(ord(c) < 32 or ord(c) == 127 for c in v)
    ):
        return "/"
    parts = urlsplit(v)
    if parts.scheme or parts.netloc:
        return "/"
    return v


def here(request: Request) -> str:
    """This page's path and query (for ``next`` and the language switch)."""
    q = request.url.query
    return request.url.path + (f"?{q}" if q else "")


def page(
    request: Request,
    template: str,
    *,
    title: str,
    session: sessions.Session | None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page: never cached (it carries a CSRF token), in the request's language."""
    lang = context.pop("lang", None) or lang_of(request)
    body = pages.render(
        template,
        lang,
        title=title,
        user=session.user if session else None,
        csrf=context.pop("csrf", None) or (session.csrf if session else ""),
        here=here(request),
        here_path=request.url.path,
        **context,
    )
    response = HTMLResponse(body, status_code=status, headers=headers)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Language"] = lang
    chosen = request.query_params.get("lang")
    if chosen in ("it", "en"):
        response.set_cookie("lang", chosen, max_age=365 * 86400, path="/", samesite="lax")
    return response


def message_page(
    request: Request,
    session: sessions.Session | None,
    message: str,
    *,
    status: int,
    title: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A page saying one thing (an error or a confirmation), with a way back."""
    lang = lang_of(request)
    links = [("/", t(lang, "error.back"))]
    if session is None and status in (401, 403):
        links.append((f"/app/login?next={quote(here(request))}", t(lang, "session.login")))
    return page(
        request,
        "message.html",
        title=title or t(lang, "error.title"),
        session=session,
        status=status,
        headers=headers,
        message=message,
        error=status >= 400,
        links=links,
    )


def to_login(request: Request) -> RedirectResponse:
    """303 to the sign-in page, coming back here afterwards (GET) or to the referring page."""
    target = here(request) if request.method == "GET" else "/"
    return RedirectResponse(f"/app/login?next={quote(target, safe='/')}", status_code=303)


def forbidden(request: Request, session: sessions.Session | None, key: str = "auth.forbidden"):
    return message_page(request, session, t(lang_of(request), key), status=403)


def csrf_refused(request: Request, session: sessions.Session | None) -> HTMLResponse:
    return message_page(request, session, t(lang_of(request), "csrf.failed"), status=403)


# ----- static files of the pages ------------------------------------------------------------

_STATIC = pages.static_files()


@router.get("/app/accounts-static/{name}")
def accounts_static(name: str) -> Response:
    """A script or stylesheet of these pages (a fixed list of files)."""
    path = _STATIC.get(name)
    if path is None:
        raise NotFound(f"no file {name!r}")
    media = "text/javascript" if path.suffix == ".js" else "text/css"
    return FileResponse(
        path, media_type=media + "; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


# ----- session, login, logout ---------------------------------------------------------------


@router.get("/app/session")
async def session_info(request: Request) -> Response:
    """Who is signed in (``{"user": null}`` if nobody) and the CSRF token for scripts."""
    session = await current_session(request)
    response = json_response(session_json(session))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Cookie"
    return response


def _login_page(
    request: Request,
    session: sessions.Session | None,
    *,
    next_url: str,
    status: int = 200,
    error: str | None = None,
    username: str = "",
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    lang = lang_of(request)
    pre = request.cookies.get(PRE_COOKIE)
    fresh = pre is None or len(pre) > sessions.MAX_TOKEN
    if fresh:
        pre = sessions.new_secret()
    notice = t(lang, "login.signed_out") if request.query_params.get("signed_out") else None
    response = page(
        request,
        "login.html",
        title=t(lang, "login.title"),
        session=session,
        status=status,
        headers=headers,
        csrf=sessions.csrf_token(pre) if session is None else session.csrf,
        next=next_url,
        error=error,
        notice=notice,
        username=username,
        hide_login=True,
    )
    if fresh:
        set_cookie(response, request, PRE_COOKIE, pre, PRE_MAX_AGE)
    return response


@router.get("/app/login")
async def login_form(request: Request) -> Response:
    """The sign-in form (``next``: where to go afterwards, a path of this site)."""
    session = await current_session(request)
    return _login_page(request, session, next_url=safe_next(request.query_params.get("next")))


@router.post("/app/login")
async def login(request: Request) -> Response:
    """Check the CSRF token, the rate limits, then the password; start a session."""
    data = await read_urlencoded(request)
    lang = lang_of(request)
    next_url = safe_next(form_value(data, "next", 2000))
    if not sessions.csrf_ok(request.cookies.get(PRE_COOKIE), form_value(data, CSRF_FIELD)):
        return csrf_refused(request, None)
    username = form_value(data, "username", 64)
    password = form_value(data, "password", users.MAX_PASSWORD)
    try:
        user = await run_in_threadpool(
            users.sign_in, username, password, client=client_address(request)
        )
    except TooManyAttempts as exc:
        minutes = max(1, -(-exc.retry_after // 60))
        return _login_page(
            request,
            None,
            next_url=next_url,
            status=429,
            username=username,
            error=t(lang, "login.too_many", minutes=minutes),
            headers=exc.headers,
        )
    except users.BadCredentials:
        return _login_page(
            request,
            None,
            next_url=next_url,
            status=401,
            username=username,
            error=t(lang, "login.bad_credentials"),
        )
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await run_in_threadpool(sessions.delete_session, old)
    session = await run_in_threadpool(sessions.create_session, user)
    response = RedirectResponse(next_url, status_code=303)
    max_age = int(get_account_settings().session_hours * 3600)
    set_cookie(response, request, SESSION_COOKIE, session.token, max_age)
    clear_cookie(response, request, PRE_COOKIE)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/app/logout")
async def logout(request: Request) -> Response:
    """Sign out (the session's row is deleted); needs the session's CSRF token."""
    session = await current_session(request)
    data = await read_urlencoded(request)
    if session is not None:
        try:
            check_csrf(session, form_value(data, CSRF_FIELD))
        except CsrfFailed:
            return csrf_refused(request, session)
        await run_in_threadpool(sessions.delete_session, session.token)
    response = RedirectResponse("/app/login?signed_out=1", status_code=303)
    clear_cookie(response, request, SESSION_COOKIE)
    response.headers["Cache-Control"] = "no-store"
    return response


# ----- users (admin) ------------------------------------------------------------------------


def _comune_options() -> list[tuple[str, str]]:
    from geo.territory import get_territory

    t_ = get_territory()
    return sorted(((c, t_.comuni[c].name) for c in t_.comuni), key=lambda x: x[1])


def _comune_names(codes) -> list[str]:
    from geo.territory import get_territory

    t_ = get_territory()
    return [t_.comuni[c].name for c in codes if c in t_.comuni]


def _users_page(
    request: Request,
    session: sessions.Session,
    *,
    status: int = 200,
    errors: dict[str, list[str]] | None = None,
    form: dict[str, Any] | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    lang = lang_of(request)
    return page(
        request,
        "users.html",
        title=t(lang, "users.title"),
        session=session,
        status=status,
        users=users.list_users(),
        errors=errors or {},
        form=form or {"username": "", "display_name": "", "role": "editor", "comuni": []},
        notice=notice,
        comuni_options=_comune_options(),
        comune_names=_comune_names,
        min_password=get_account_settings().min_password_length,
    )


async def _admin_session(request: Request) -> sessions.Session | Response:
    session = await current_session(request)
    if session is None:
        return to_login(request)
    if not session.user.admin:
        return forbidden(request, session, "auth.admin_only")
    return session


@router.get("/app/users")
async def users_page(request: Request) -> Response:
    """Admins: the users, a form to create one, buttons to disable or enable."""
    session = await _admin_session(request)
    if isinstance(session, Response):
        return session
    lang = lang_of(request)
    notice = None
    done, name = request.query_params.get("done"), request.query_params.get("name", "")
    known = {u.username for u in await run_in_threadpool(users.list_users)}
    notices = {
        "created": "users.created",
        "updated": "users.updated",
        "disabled": "users.disabled_done",
        "enabled": "users.enabled_done",
    }
    if done in notices and name in known:
        notice = t(lang, notices[done], name=name)
    elif done == "deleted" and name not in known and users.USERNAME_RE.match(name):
        notice = t(lang, "users.deleted_done", name=name)
    return await run_in_threadpool(lambda: _users_page(request, session, notice=notice))


@router.post("/app/users")
async def users_post(request: Request) -> Response:
    """Create a user (``action=create``), or disable/enable one (``action=disable|enable``)."""
    session = await _admin_session(request)
    if isinstance(session, Response):
        return session
    data = await read_urlencoded(request)
    try:
        check_csrf(session, form_value(data, CSRF_FIELD))
    except CsrfFailed:
        return csrf_refused(request, session)
    lang = lang_of(request)
    action = form_value(data, "action", 20)
    username = form_value(data, "username", 100).strip().lower()
    if action in ("disable", "enable"):
        if username == session.user.username:
            return await run_in_threadpool(
                lambda: _users_page(
                    request, session, status=422, errors={"": [t(lang, "users.self")]}
                )
            )
        try:
            await run_in_threadpool(
                lambda: users.set_disabled(username, action == "disable", keep_an_admin=True)
            )
        except GeoError as exc:
            status, msg = form_status(exc), exc_text(lang, exc)
            return await run_in_threadpool(
                lambda: _users_page(request, session, status=status, errors={"": [msg]})
            )
        done = "disabled" if action == "disable" else "enabled"
        return RedirectResponse(f"/app/users?done={done}&name={quote(username)}", 303)
    if action != "create":
        return await run_in_threadpool(
            lambda: _users_page(request, session, status=422, errors={"": ["action?"]})
        )
    form = {
        "username": form_value(data, "username", 100),
        "display_name": form_value(data, "display_name", 200),
        "role": "admin" if form_value(data, "role", 10) == "admin" else "editor",
        "comuni": [c for c in data.get("comuni", [])[:200] if c],
    }
    try:
        created = await run_in_threadpool(
            lambda: users.create_user(
                form["username"],
                form_value(data, "password", users.MAX_PASSWORD + 1),
                admin=form["role"] == "admin",
                comuni=form["comuni"],
                display_name=form["display_name"],
            )
        )
    except GeoError as exc:
        fieldname = str(exc.extra.get("parameter") or "")
        status, msg = form_status(exc), exc_text(lang, exc)
        errors = {fieldname if fieldname in form or fieldname == "password" else "": [msg]}
        return await run_in_threadpool(
            lambda: _users_page(request, session, status=status, errors=errors, form=form)
        )
    return RedirectResponse(f"/app/users?done=created&name={quote(created.username)}", 303)


# ----- one user: role and comuni, deletion (admin) ------------------------------------------


async def _admin_form(request: Request) -> tuple[sessions.Session, dict[str, list[str]]] | Response:
    """An admin's posted form, its CSRF token checked (the body is read after sign-in)."""
    session = await _admin_session(request)
    if isinstance(session, Response):
        return session
    data = await read_urlencoded(request)
    try:
        check_csrf(session, form_value(data, CSRF_FIELD))
    except CsrfFailed:
        return csrf_refused(request, session)
    return session, data


def _target(request: Request, session: sessions.Session, username: str) -> users.User | Response:
    """The user named in the path, or a 404 page saying so (sync: reads the store)."""
    try:
        return users.get_user(username[:100])
    except NotFound as exc:
        return message_page(request, session, exc_text(lang_of(request), exc), status=404)


def _user_page(
    request: Request,
    session: sessions.Session,
    target: users.User,
    *,
    status: int = 200,
    errors: dict[str, list[str]] | None = None,
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The form of one user's role and comuni, and the way to delete them."""
    lang = lang_of(request)
    return page(
        request,
        "user_edit.html",
        title=t(lang, "users.edit_title", name=target.username),
        session=session,
        status=status,
        target=target,
        errors=errors or {},
        form=form or {"role": "admin" if target.admin else "editor", "comuni": list(target.comuni)},
        comuni_options=_comune_options(),
        comune_names=_comune_names,
        is_self=target.username == session.user.username,
    )


@router.get("/app/users/{username}/edit")
async def user_form(request: Request, username: str) -> Response:
    """Admins: one user's role and comuni, and a button to delete them."""
    session = await _admin_session(request)
    if isinstance(session, Response):
        return session

    def show() -> Response:
        target = _target(request, session, username)
        if isinstance(target, Response):
            return target
        return _user_page(request, session, target)

    return await run_in_threadpool(show)


@router.post("/app/users/{username}/edit")
async def user_save(request: Request, username: str) -> Response:
    """Make the user admin or editor of the chosen comuni (never the last admin demoted)."""
    posted = await _admin_form(request)
    if isinstance(posted, Response):
        return posted
    session, data = posted
    lang = lang_of(request)
    form = {
        "role": "admin" if form_value(data, "role", 10) == "admin" else "editor",
        "comuni": [c[:100] for c in data.get("comuni", [])[:200] if c],
    }

    def save() -> Response:
        target = _target(request, session, username)
        if isinstance(target, Response):
            return target
        try:
            updated = users.set_role(
                target.username,
                admin=form["role"] == "admin",
                comuni=form["comuni"],
                keep_an_admin=True,
            )
        except GeoError as exc:
            if exc.status >= 500:
                raise
            field = "role" if isinstance(exc, users.LastAdmin) else str(exc.extra.get("parameter"))
            errors = {field if field in ("role", "comuni") else "": [exc_text(lang, exc)]}
            return _user_page(
                request, session, target, status=form_status(exc), errors=errors, form=form
            )
        if updated.username == session.user.username and not updated.admin:
            message = t(lang, "users.self_demoted", comuni=", ".join(_comune_names(updated.comuni)))
            title = t(lang, "users.updated", name=updated.username)
            return message_page(request, session, message, status=200, title=title)
        return RedirectResponse(f"/app/users?done=updated&name={quote(updated.username)}", 303)

    return await run_in_threadpool(save)


@router.post("/app/users/{username}/delete")
async def user_delete(request: Request, username: str) -> Response:
    """First a confirmation page; with ``confirm=yes`` the user and their sessions go."""
    posted = await _admin_form(request)
    if isinstance(posted, Response):
        return posted
    session, data = posted
    lang = lang_of(request)

    def act() -> Response:
        target = _target(request, session, username)
        if isinstance(target, Response):
            return target
        if target.username == session.user.username:
            return _users_page(
                request, session, status=422, errors={"": [t(lang, "users.delete_self")]}
            )
        if form_value(data, "confirm", 10) != "yes":
            return page(
                request,
                "confirm_delete_user.html",
                title=t(lang, "users.delete_title", name=target.username),
                session=session,
                target=target,
            )
        try:
            users.delete_user(target.username, keep_an_admin=True)
        except GeoError as exc:
            if exc.status >= 500:
                raise
            return _users_page(
                request, session, status=form_status(exc), errors={"": [exc_text(lang, exc)]}
            )
        return RedirectResponse(f"/app/users?done=deleted&name={quote(target.username)}", 303)

    return await run_in_threadpool(act)
