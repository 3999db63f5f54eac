#!/usr/bin/env bash
# Install the service in .venv and serve it on the embedded default data.
#
#     bash scripts/serve.sh                # http://127.0.0.1:8000/
#     CMM_GEO_PORT=9000 bash scripts/serve.sh
#
# Nothing to start besides this: the territory ships in data/, interventions and layers
# go to an embedded database under CMM_GEO_DATA_DIR (default ~/.local/share/cmm-geo),
# or to PostgreSQL + PostGIS when CMM_GEO_DATABASE_URL is set.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-python3}
VENV="$ROOT/.venv"
log() { printf '==> [serve.sh] %s\n' "$*"; }

SUDO=()
[[ "$(id -u)" -ne 0 ]] && command -v sudo >/dev/null 2>&1 && SUDO=(sudo)

if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating .venv with $("$PYTHON" -V 2>&1)"
    if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
        log "python3 -m venv failed: installing Debian's python3-venv"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null
        minor=$("$PYTHON" -c 'import sys; print(sys.version_info.minor)')
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y install \
            python3-venv "python3.${minor}-venv" >/dev/null || true
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi
fi

stamp="$VENV/.cmm-geo-serve-installed"
want=$(cat pyproject.toml <("$VENV/bin/python" -VV) | sha256sum | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    log "installing the service (pip install -e .)"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e .
    echo "$want" >"$stamp"
fi

bash "$ROOT/scripts/fetch_assets.sh"

exec "$VENV/bin/cmm-geo" serve "$@"
