#!/usr/bin/env bash
# Build the Linux desktop bundle: dist/FastSlow/ (one folder, run dist/FastSlow/fastslow), checked
# with --self-test, then packed as dist/FastSlow-<version>-linux-<arch>.tar.gz, and as an AppImage
# when appimagetool is on PATH. Run from anywhere; uses .venv (make setup) unless PYTHON is set.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
VERSION=$("$PY" -c "import tomllib; print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")
ARCH=$(uname -m)

"$PY" -m pip install --quiet -e '.[bundled,gui,hub]' 'pyinstaller>=6.10'
"$PY" -m PyInstaller packaging/fastslow.spec --noconfirm --clean --distpath dist --workpath build/pyinstaller
dist/FastSlow/fastslow --self-test
tar -czf "dist/FastSlow-$VERSION-linux-$ARCH.tar.gz" -C dist FastSlow
echo "built dist/FastSlow ($(du -sh dist/FastSlow | cut -f1)) and dist/FastSlow-$VERSION-linux-$ARCH.tar.gz"

if command -v appimagetool >/dev/null; then
    APPDIR=build/FastSlow.AppDir
    rm -rf "$APPDIR" && mkdir -p "$APPDIR/usr/bin"
    cp -a dist/FastSlow/. "$APPDIR/usr/bin/"
    cp packaging/icon.png "$APPDIR/fastslow.png"
    printf '[Desktop Entry]\nType=Application\nName=FastSlow\nExec=fastslow\nIcon=fastslow\nCategories=Development;\n' \
        > "$APPDIR/fastslow.desktop"
    printf '#!/bin/sh\nexec "$(dirname "$(readlink -f "$0")")/usr/bin/fastslow" "$@"\n' > "$APPDIR/AppRun"
    chmod +x "$APPDIR/AppRun"
    ARCH=$ARCH appimagetool "$APPDIR" "dist/FastSlow-$VERSION-$ARCH.AppImage"
fi
