#!/usr/bin/env bash
# Build the macOS app (Apple Silicon): dist/FastSlow.app with llama.cpp's Metal backend, checked
# with --self-test, packed as dist/FastSlow-<version>-macos-arm64.dmg. Run on a Mac with Xcode's
# command-line tools; set CODESIGN_IDENTITY to sign (Gatekeeper needs a signed, notarised app).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VERSION=$("$PYTHON" -c "import tomllib; print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])")

"$PYTHON" -m venv build/venv-macos
PY=build/venv-macos/bin/python
# Metal is llama.cpp's default on Apple Silicon; said explicitly so a cached CPU wheel is not reused.
CMAKE_ARGS="-DGGML_METAL=on" "$PY" -m pip install --no-cache-dir --force-reinstall 'llama-cpp-python==0.3.36'
"$PY" -m pip install -e '.[bundled,gui,hub,mlx,apple]' 'pyinstaller>=6.10'
"$PY" -m PyInstaller packaging/fastslow.spec --noconfirm --clean --distpath dist --workpath build/pyinstaller
dist/FastSlow.app/Contents/MacOS/fastslow --self-test
if [ -n "${CODESIGN_IDENTITY:-}" ]; then
    codesign --deep --force --options runtime --sign "$CODESIGN_IDENTITY" dist/FastSlow.app
fi
hdiutil create -volname FastSlow -srcfolder dist/FastSlow.app -ov -format UDZO "dist/FastSlow-$VERSION-macos-arm64.dmg"
echo "built dist/FastSlow.app and dist/FastSlow-$VERSION-macos-arm64.dmg"
