"""User accounts: passwords, roles, sessions, sign-in rate limits, and the pages' texts.

Where things live:

* :mod:`.config` — ``CMM_GEO_SESSION_HOURS``, ``CMM_GEO_LOGIN_MAX_FAILURES``… (their own
  settings class, read from the same ``CMM_GEO_`` environment);
* :mod:`.tables` — ``users``, ``sessions``, ``login_attempts`` (migration ``0004_accounts``);
* :mod:`.passwords` — argon2id hashing (memory-hard), constant work for unknown users;
* :mod:`.users` — create, list, change password, disable, delete; role → :class:`Principal`;
* :mod:`.sessions` — random 256-bit session ids stored hashed, expiry, sign-out, the CSRF
  token bound to each session;
* :mod:`.ratelimit` — failed sign-ins counted per user name and per client address;
* :mod:`.messages` — Italian and English strings of the pages; :mod:`.pages` renders them
  (Jinja2, autoescaped); :mod:`.forms` turns the intervention form into a Feature and the
  validation errors back into per-field messages;
* :mod:`.cli` — ``cmm-geo users …``.

Roles are the same as the API tokens' (:class:`geo.auth.Principal`): an **admin** writes
everything; an **editor** writes interventions all of whose comuni are theirs, uploads
layers, and replaces or deletes the layers they uploaded. Nothing here imports a web
framework; ``api/session.py`` and ``api/routes/accounts.py`` are the HTTP side.
"""

from geo.accounts.ratelimit import TooManyAttempts
from geo.accounts.sessions import Session, create_session, delete_session, resolve_session
from geo.accounts.users import (
    User,
    create_user,
    delete_user,
    get_user,
    list_users,
    set_disabled,
    set_password,
    sign_in,
)

__all__ = [
    "Session",
    "TooManyAttempts",
    "User",
    "create_session",
    "create_user",
    "delete_session",
    "delete_user",
    "get_user",
    "list_users",
    "resolve_session",
    "set_disabled",
    "set_password",
    "sign_in",
]
