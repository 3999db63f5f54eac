#!/usr/bin/env bash
# Install the browser assets (Leaflet, Leaflet.markercluster and their CSS/images; Leaflet-Geoman
# for drawing; Swagger UI) from the npm registry into api/static/vendor/, served by the app at
# /static/vendor/, so that every map page renders with no internet. Versions are pinned in
# assets/package.json and assets/package-lock.json (with integrity hashes); `npm ci` verifies them.
#
#     bash scripts/fetch_assets.sh          # no-op when the installed versions match the lock
#     CMM_GEO_FORCE_ASSETS=1 bash scripts/fetch_assets.sh
#
# Needs node + npm (Debian: apt-get install -y nodejs npm).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ASSETS="$ROOT/assets"
VENDOR="$ROOT/api/static/vendor"
STAMP="$VENDOR/.lock-sha256"
log() { printf '==> [fetch_assets.sh] %s\n' "$*"; }

want=$(sha256sum "$ASSETS/package-lock.json" | cut -d' ' -f1)
if [[ "${CMM_GEO_FORCE_ASSETS:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    log "map assets up to date in api/static/vendor"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    log "npm missing: installing Debian's nodejs and npm"
    SUDO=()
    [[ "$(id -u)" -ne 0 ]] && SUDO=(sudo)
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y install --no-install-recommends \
        nodejs npm >/dev/null
fi

log "npm ci in assets/"
(cd "$ASSETS" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)

tmp="$VENDOR.tmp.$$"
trap 'rm -rf -- "$tmp"' EXIT  # a failed copy leaves nothing behind
rm -rf -- "$tmp"
mkdir -p "$tmp/leaflet" "$tmp/leaflet.markercluster" "$tmp/swagger-ui" "$tmp/leaflet-geoman"
L="$ASSETS/node_modules/leaflet"
MC="$ASSETS/node_modules/leaflet.markercluster"
cp "$L/dist/leaflet.js" "$L/dist/leaflet.js.map" "$L/dist/leaflet.css" "$L/LICENSE" "$tmp/leaflet/"
cp -R "$L/dist/images" "$tmp/leaflet/"
cp "$MC/dist/leaflet.markercluster.js" "$MC/dist/leaflet.markercluster.js.map" \
    "$MC/dist/MarkerCluster.css" "$MC/dist/MarkerCluster.Default.css" "$MC/MIT-LICENCE.txt" \
    "$tmp/leaflet.markercluster/"
SW="$ASSETS/node_modules/swagger-ui-dist"
cp "$SW/swagger-ui-bundle.js" "$SW/swagger-ui.css" "$SW/LICENSE" "$tmp/swagger-ui/"
GM="$ASSETS/node_modules/@geoman-io/leaflet-geoman-free"  # drawing on the edit form's map
cp "$GM/dist/leaflet-geoman.js" "$GM/dist/leaflet-geoman.css" "$GM/LICENSE" "$tmp/leaflet-geoman/"
VG="$ASSETS/node_modules/leaflet.vectorgrid"  # vector tiles of big layers in the app
mkdir -p "$tmp/leaflet.vectorgrid"
cp "$VG/dist/Leaflet.VectorGrid.bundled.min.js" "$VG/package.json" "$tmp/leaflet.vectorgrid/"  # its licence (Beerware) is in package.json
AXE="$ASSETS/node_modules/axe-core"  # accessibility checks of the browser tests
mkdir -p "$tmp/axe-core"
cp "$AXE/axe.min.js" "$AXE/LICENSE" "$tmp/axe-core/"
echo "$want" >"$tmp/.lock-sha256"
rm -rf -- "$VENDOR"
mv -- "$tmp" "$VENDOR"
log "map assets installed in api/static/vendor ($(du -sh "$VENDOR" | cut -f1))"
