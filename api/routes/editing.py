"""Editing in the browser: intervention forms, deletion, change history, layer upload.

Every write goes through the same domain functions as the JSON API, with the session
user's :class:`~geo.auth.Principal` (same validation, same rights, same history). Each
route resolves the session before reading a body; every POST checks the CSRF token
(form field, or ``X-CSRF-Token`` for the upload page's scripts) and answers 403 without it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.responses import json_response
from api.routes.accounts import csrf_refused, message_page, page, to_login
from api.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    CsrfFailed,
    check_csrf,
    current_session,
    form_status,
    form_value,
    lang_of,
    read_urlencoded,
)
from api.uploads import read_form
from geo import interventions as iv
from geo.accounts import pages
from geo.accounts.forms import InterventionForm, field_errors
from geo.accounts.messages import MESSAGES, exc_text, t
from geo.accounts.sessions import Session
from geo.errors import Conflict, Forbidden, GeoError, ValidationFailed

router = APIRouter(include_in_schema=False)
ROME = ZoneInfo("Europe/Rome")


async def _signed_in(request: Request) -> Session | Response:
    session = await current_session(request)
    return to_login(request) if session is None else session


def _territory():
    from geo.territory import get_territory

    return get_territory()


def _comuni_options(session: Session) -> list[tuple[str, str]]:
    """Comuni the user may choose: all for an admin, their own for an editor."""
    t_ = _territory()
    codes = t_.comuni.keys() if session.user.admin else session.user.comuni
    return sorted(((c, t_.comuni[c].name) for c in codes if c in t_.comuni), key=lambda x: x[1])


def _programmes(current: str = "") -> list[str]:
    from geo.plan import PlanCatalogue

    names = [p.name for p in PlanCatalogue.load().programmes]
    return names + ([current] if current and current not in names else [])


def _form_page(
    request: Request,
    session: Session,
    form: InterventionForm,
    *,
    mode: str,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
    saved: bool = False,
) -> HTMLResponse:
    lang = lang_of(request)
    settings = request.app.state.settings
    tiles = settings.tiles_url.strip()
    tiles = "" if not tiles or tiles.lower() == "none" else tiles
    if mode == "new":
        action, title = "/app/interventions/new", t(lang, "iv.new_title")
    else:
        action = f"/app/interventions/{quote(form.id, safe='')}/edit"
        title = t(lang, "iv.edit_title", id=form.id)
    from geo import BOUNDARIES_ATTRIBUTION

    return page(
        request,
        "intervention_form.html",
        title=title,
        session=session,
        status=status,
        form=form,
        mode=mode,
        action=action,
        errors=errors or {},
        saved=saved,
        programmes=_programmes(form.values.get("programme", "")),
        comuni_options=_comuni_options(session),
        editable=[] if session.user.admin else list(session.user.comuni),
        tiles=tiles,
        tiles_attribution="© OpenStreetMap contributors" if tiles else "",
        attribution=BOUNDARIES_ATTRIBUTION,
    )


def _refused(exc: GeoError, lang: str, session: Session) -> dict[str, list[str]]:
    """Field errors of a refused write, with the Italian wording of the common refusals."""
    if isinstance(exc, Forbidden):
        names = ", ".join(n for _, n in _comuni_options(session)) or "—"
        return {"": [t(lang, "iv.forbidden", comuni=names)]}
    if isinstance(exc, Conflict):
        return {"id": [t(lang, "iv.conflict")]}
    return field_errors(exc, lang)


async def _posted_form(request: Request) -> tuple[Session, dict[str, list[str]]] | Response:
    """The signed-in session and its posted form, the CSRF token checked; else the answer
    to send (the sign-in page, or the 403 page). Authentication comes before the body."""
    session = await _signed_in(request)
    if isinstance(session, Response):
        return session
    data = await read_urlencoded(request)
    try:
        check_csrf(session, form_value(data, CSRF_FIELD))
    except CsrfFailed:
        return csrf_refused(request, session)
    return session, data


# ----- new / edit / delete ------------------------------------------------------------------


@router.get("/app/interventions/new")
async def new_form(request: Request) -> Response:
    """An empty intervention form (an editor with one comune gets it preselected)."""
    session = await _signed_in(request)
    if isinstance(session, Response):
        return session
    form = InterventionForm()
    if not session.user.admin and len(session.user.comuni) == 1:
        form.comuni = list(session.user.comuni)
    return await run_in_threadpool(_form_page, request, session, form, mode="new")


@router.post("/app/interventions/new")
async def create(request: Request) -> Response:
    """Create the intervention, or show the form again with each error beside its field."""
    posted = await _posted_form(request)
    if isinstance(posted, Response):
        return posted
    session, data = posted
    lang = lang_of(request)
    form = InterventionForm.from_post(data)

    def write() -> dict[str, Any]:
        return iv.create_feature(form.new_feature(), principal=session.principal)

    try:
        feature = await run_in_threadpool(write)
    except GeoError as exc:
        if exc.status >= 500:
            raise
        errors, status = _refused(exc, lang, session), form_status(exc)
        return await run_in_threadpool(
            lambda: _form_page(request, session, form, mode="new", errors=errors, status=status)
        )
    return RedirectResponse(
        f"/app/interventions/{quote(str(feature['id']), safe='')}/edit?saved=1", status_code=303
    )


def _editable(request: Request, session: Session, intervention_id: str):
    """The stored feature, or the page saying it is absent (404) or not the user's (403)."""
    feature = iv.get_feature(intervention_id)
    lang = lang_of(request)
    if feature is None:
        return message_page(
            request, session, t(lang, "iv.not_found", id=intervention_id), status=404
        )
    if not session.principal.may_write(feature["properties"]["comuni"]):
        names = ", ".join(n for _, n in _comuni_options(session)) or "—"
        return message_page(request, session, t(lang, "iv.forbidden", comuni=names), status=403)
    return feature


@router.get("/app/interventions/{intervention_id}/edit")
async def edit_form(request: Request, intervention_id: str) -> Response:
    """The form of a stored intervention (only for who may write it)."""
    session = await _signed_in(request)
    if isinstance(session, Response):
        return session

    def build() -> Response:
        feature = _editable(request, session, intervention_id)
        if isinstance(feature, Response):
            return feature
        saved = request.query_params.get("saved") == "1"
        form = InterventionForm.from_feature(feature)
        return _form_page(request, session, form, mode="edit", saved=saved)

    return await run_in_threadpool(build)


@router.post("/app/interventions/{intervention_id}/edit")
async def update(request: Request, intervention_id: str) -> Response:
    """Save the form (a merge patch: fields emptied in the form are removed)."""
    posted = await _posted_form(request)
    if isinstance(posted, Response):
        return posted
    session, data = posted
    lang = lang_of(request)
    form = InterventionForm.from_post(data)
    form.id = intervention_id

    def write() -> Response | None:
        current = _editable(request, session, intervention_id)
        if isinstance(current, Response):
            return current
        try:
            iv.patch_feature(intervention_id, form.patch(current), principal=session.principal)
        except GeoError as exc:
            if exc.status >= 500:
                raise
            errors = _refused(exc, lang, session)
            return _form_page(
                request, session, form, mode="edit", errors=errors, status=form_status(exc)
            )
        return None

    refused = await run_in_threadpool(write)
    if refused is not None:
        return refused
    return RedirectResponse(
        f"/app/interventions/{quote(intervention_id, safe='')}/edit?saved=1", status_code=303
    )


@router.post("/app/interventions/{intervention_id}/delete")
async def delete(request: Request, intervention_id: str) -> Response:
    """First a confirmation page; with ``confirm=yes`` the intervention is deleted."""
    posted = await _posted_form(request)
    if isinstance(posted, Response):
        return posted
    session, data = posted
    lang = lang_of(request)

    def act() -> Response:
        feature = _editable(request, session, intervention_id)
        if isinstance(feature, Response):
            return feature
        if form_value(data, "confirm", 10) != "yes":
            return page(
                request,
                "confirm_delete.html",
                title=t(lang, "iv.delete_title", id=intervention_id),
                session=session,
                feature=feature,
            )
        iv.delete(intervention_id, principal=session.principal)
        return RedirectResponse(
            f"/app/interventions/{quote(intervention_id, safe='')}/history?deleted=1",
            status_code=303,
        )

    return await run_in_threadpool(act)


# ----- history ------------------------------------------------------------------------------


def _shown(field: str, value: Any, lang: str) -> str:
    """A value of the history as text (comuni by name, lists joined, empty marked)."""
    if value is None or value == [] or value == "":
        return t(lang, "history.empty")
    if field in ("comuni", "comuni_named") and isinstance(value, list):
        t_ = _territory()
        return ", ".join(t_.comuni[c].name if c in t_.comuni else str(c) for c in value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        text = f"{value:,.2f}"
        return text.replace(",", " ").replace(".", ",").replace(" ", ".") if lang == "it" else text
    return str(value)


@router.get("/app/interventions/{intervention_id}/history")
async def history_page(request: Request, intervention_id: str) -> Response:
    """Who changed the intervention, when, and what, field by field (newest first)."""
    session = await _signed_in(request)
    if isinstance(session, Response):
        return session
    from geo.interventions.history import history

    lang = lang_of(request)

    def build() -> Response:
        entries = history(intervention_id)
        feature = iv.get_feature(intervention_id)
        if not entries and feature is None:
            return message_page(
                request, session, t(lang, "iv.not_found", id=intervention_id), status=404
            )
        shown = [
            {
                **e,
                "when": e["at"].astimezone(ROME).strftime("%d/%m/%Y %H:%M:%S"),
                "changes": {
                    f: [_shown(f, a, lang), _shown(f, b, lang)]
                    for f, (a, b) in e["changes"].items()
                },
            }
            for e in entries
        ]
        deleted = request.query_params.get("deleted") == "1" and feature is None
        return page(
            request,
            "history.html",
            title=t(lang, "history.title", id=intervention_id),
            session=session,
            intervention_id=intervention_id,
            entries=shown,
            exists=feature is not None
            and session.principal.may_write(feature["properties"]["comuni"]),
            title_now=feature["properties"]["title"] if feature else None,
            notice=t(lang, "iv.deleted", id=intervention_id) if deleted else None,
            show=str,
        )

    return await run_in_threadpool(build)


# ----- layer upload -------------------------------------------------------------------------


def _upload_messages(lang: str) -> str:
    """The upload script's strings (JSON in a data attribute: no inline script)."""
    prefixes = ("layers.", "type.", "format.")
    keys = [k for k in MESSAGES[lang] if k.startswith(prefixes)]
    return orjson.dumps({k: t(lang, k) for k in keys}).decode()


@router.get("/app/layers/new")
async def upload_page(request: Request) -> Response:
    """The upload form: drag and drop or chooser, progress, CRS choice, replace or keep."""
    session = await _signed_in(request)
    if isinstance(session, Response):
        return session
    lang = lang_of(request)
    return page(
        request,
        "layer_upload.html",
        title=t(lang, "layers.title"),
        session=session,
        max_mb=f"{request.app.state.settings.max_upload_mb:g}",
        crs_options=pages.crs_options(lang),
        messages_json=_upload_messages(lang),
    )


def _suggested(exc: GeoError) -> str | None:
    """The first CRS the server guesses for a CRS-less file, if it is one the form offers."""
    for code in exc.extra.get("suggested_crs") or []:
        if code in pages.CRS_CHOICES:
            return code
    return None


async def _upload_form(request: Request, session: Session, fields: tuple[str, ...]):
    """The multipart form of the upload page, after its CSRF token is checked."""
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        check_csrf(session, header)  # scripts: checked before the body is read
    settings = request.app.state.settings
    form = await read_form(
        request,
        files=("file",),
        required=("file",),
        fields=(*fields, CSRF_FIELD),
        limit_mb=settings.max_upload_mb,
        timeout_s=settings.body_timeout_s,
    )
    if header is None:
        check_csrf(session, form.fields.get(CSRF_FIELD))
    return form


def _json_error(exc: GeoError, lang: str) -> Response:
    body = exc.to_dict()
    body["message"] = t(lang, "layers.failed", error=exc_text(lang, exc))
    return json_response(body, status_code=form_status(exc), headers=getattr(exc, "headers", None))


@router.post("/app/layers/inspect")
async def inspect_upload(request: Request) -> Response:
    """Read a file without storing it: format, features, CRS (or the server's guess),
    the layers of a GeoPackage, whether its name is taken and whether the user may replace."""
    session = await current_session(request)
    lang = lang_of(request)
    if session is None:
        return json_response({"description": t(lang, "auth.required")}, status_code=401)
    try:
        form = await _upload_form(request, session, ("layer", "name"))
    except CsrfFailed as exc:
        return _json_error(exc, lang)
    from geo.layers.reading import read_upload
    from geo.layers.store import find_by_name

    up = form.files["file"]
    settings = request.app.state.settings

    def inspect() -> dict[str, Any]:
        out: dict[str, Any] = {"filename": up.filename, "crs_missing": False}
        try:
            data = read_upload(up.data, up.filename, layer=form.text("layer"), settings=settings)
        except GeoError as exc:
            if exc.extra.get("parameter") == "crs" and "suggested_crs" in exc.extra:
                out.update(crs_missing=True, suggested_crs=_suggested(exc))
                name = up.filename.rsplit(".", 1)[0]
            elif exc.extra.get("parameter") == "layer" and exc.extra.get("layers"):
                out.update(layers=exc.extra["layers"], needs_layer=True)
                return out
            else:
                raise
        else:
            rep = data.report
            name = data.name
            out.update(
                format=rep.get("format"),
                features=data.feature_count,
                geometry_type=data.family,
                crs=data.source_crs,
            )
        label = form.text("name") or name
        out["name"] = label
        taken = find_by_name(label)
        if taken:
            out["conflict"] = {
                "id": taken["id"],
                "name": taken["name"],
                "may_replace": session.principal.may_manage(taken.get("owner")),
            }
        return out

    try:
        result = await run_in_threadpool(inspect)
    except GeoError as exc:
        if exc.status >= 500:
            raise
        return _json_error(exc, lang)
    return json_response(result)


@router.post("/app/layers/new")
async def upload(request: Request) -> Response:
    """Store the layer; a name already taken answers 409 unless ``on_conflict`` says
    ``replace`` (the admin, or the editor who uploaded it) or ``keep`` (both stay)."""
    session = await _signed_in(request)
    lang = lang_of(request)
    wants_json = "application/json" in request.headers.get("accept", "")
    if isinstance(session, Response):
        if wants_json:
            return json_response({"description": t(lang, "auth.required")}, status_code=401)
        return session
    try:
        form = await _upload_form(request, session, ("name", "crs", "layer", "on_conflict"))
    except CsrfFailed as exc:
        if wants_json:
            return _json_error(exc, lang)
        return csrf_refused(request, session)
    from geo.layers.collection import add_layer, replace_layer
    from geo.layers.reading import read_upload
    from geo.layers.store import find_by_name

    up = form.files["file"]
    settings = request.app.state.settings
    choice = form.text("on_conflict")

    def store() -> tuple[int, dict[str, Any]]:
        data = read_upload(
            up.data,
            up.filename,
            crs=form.text("crs"),
            layer=form.text("layer"),
            settings=settings,
        )
        label = form.text("name") or data.name
        taken = find_by_name(label)
        principal = session.principal
        if taken and choice not in ("replace", "keep"):
            return 409, {
                "code": "Conflict",
                "description": t(lang, "layers.conflict", name=taken["name"]),
                "conflict": {
                    "id": taken["id"],
                    "name": taken["name"],
                    "may_replace": principal.may_manage(taken.get("owner")),
                },
            }
        if taken and choice == "replace":
            if not principal.may_manage(taken.get("owner")):
                raise Forbidden(t(lang, "layers.conflict_forbidden", name=taken["name"]))
            rec = replace_layer(taken["id"], data, label)
            replaced = True
        else:
            rec = add_layer(data, label, owner=principal.owner)
            replaced = False
        heading, lines = pages.layer_report(lang, rec, replaced=replaced)
        return 201, {
            "layer": rec,
            "heading": heading,
            "lines": lines,
            "href": f"/?layer={quote(rec['id'])}",
        }

    try:
        status, body = await run_in_threadpool(store)
    except (GeoError, ValidationFailed) as exc:
        if exc.status >= 500:
            raise
        if wants_json:
            return _json_error(exc, lang)
        return message_page(
            request,
            session,
            t(lang, "layers.failed", error=exc_text(lang, exc)),
            status=form_status(exc),
        )
    if wants_json:
        return json_response(body, status_code=status)
    if status == 409:
        return message_page(request, session, body["description"], status=409)
    return page(
        request,
        "layer_report.html",
        title=body["heading"],
        session=session,
        status=201,
        heading=body["heading"],
        lines=body["lines"],
        layer_id=body["layer"]["id"],
    )
