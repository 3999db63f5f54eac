"""CLI group ``cmm-geo users``: create, list, set-password, disable, enable, delete.

The first admin is created here — there is no default user and no default password::

    cmm-geo users create maria --admin              # asks the password twice, hidden
    printf '%s\\n' "$PW" | cmm-geo users create rho-ufficio --comune Rho --password-stdin
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from geo.errors import GeoError
from geo.terminal import console, err, fail

users_app = typer.Typer(
    help="User accounts of the web app (admins, editors of comuni).", no_args_is_help=True
)

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input"
    ),
]


def _read_password(from_stdin: bool) -> str:
    """The new password: a line of stdin, or typed twice at a hidden prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            err.print("no password on standard input")
            raise typer.Exit(code=2)
        return password
    if not sys.stdin.isatty():
        err.print("standard input is not a terminal: give the password with --password-stdin")
        raise typer.Exit(code=2)
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("create")
def create(
    username: Annotated[str, typer.Argument(help="User name (a-z, 0-9, . _ -)")],
    admin: Annotated[bool, typer.Option("--admin", help="Administrator (all rights)")] = False,
    comune: Annotated[
        list[str] | None,
        typer.Option(help="Comune the editor may edit (name or ISTAT code); repeat for several"),
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="Name shown in the app")] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Create a user: an admin (--admin) or the editor of one or more comuni (--comune)."""
    from geo.accounts.users import check_password, clean_username, create_user

    try:
        name = clean_username(username)
        password = _read_password(password_stdin)
        check_password(password, name)
        user = create_user(
            name, password, admin=admin, comuni=comune or (), display_name=display_name
        )
    except GeoError as exc:
        fail(exc)
        return
    role = "admin" if user.admin else "editor of " + ", ".join(_names(user.comuni))
    console.print(f"created [bold]{user.username}[/] ({role})")


def _names(codes) -> list[str]:
    from geo.territory import get_territory

    t = get_territory()
    return [f"{t.comuni[c].name} ({c})" for c in codes if c in t.comuni]


@users_app.command("list")
def list_() -> None:
    """Every user: name, role, comuni, disabled."""
    from geo.accounts.users import list_users

    table = Table("user", "name", "role", "comuni", "state", "created")
    for u in list_users():
        table.add_row(
            u.username,
            u.display_name,
            "admin" if u.admin else "editor",
            ", ".join(_names(u.comuni)),
            "disabled" if u.disabled else "active",
            str(u.created_at or "")[:19],
        )
    console.print(table)


@users_app.command("set-password")
def set_password(
    username: Annotated[str, typer.Argument(help="User name")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Change a user's password (their sessions end)."""
    from geo.accounts.users import check_password, get_user
    from geo.accounts.users import set_password as set_pw

    try:
        get_user(username)
        password = _read_password(password_stdin)
        check_password(password, username)
        set_pw(username, password)
    except GeoError as exc:
        fail(exc)
        return
    console.print(f"password of [bold]{username}[/] changed; their sessions ended")


@users_app.command("disable")
def disable(
    username: Annotated[str, typer.Argument(help="User name")],
    enable: Annotated[bool, typer.Option("--enable", help="Enable again instead")] = False,
) -> None:
    """Disable a user (their sessions end), or enable them again with --enable."""
    from geo.accounts.users import set_disabled

    try:
        set_disabled(username, not enable)
    except GeoError as exc:
        fail(exc)
        return
    console.print(f"{'enabled' if enable else 'disabled'} [bold]{username}[/]")


@users_app.command("delete")
def delete(
    username: Annotated[str, typer.Argument(help="User name")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete a user and their sessions (their name stays in the change history)."""
    from geo.accounts.users import delete_user

    if not yes and not typer.confirm(f"delete user {username}?"):
        raise typer.Exit(code=1)
    try:
        delete_user(username)
    except GeoError as exc:
        fail(exc)
        return
    console.print(f"deleted [bold]{username}[/]")
