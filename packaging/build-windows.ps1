# Build the Windows desktop bundle: dist\FastSlow\ (one folder, run FastSlow\fastslow.exe), checked
# with --self-test, zipped as dist\FastSlow-<version>-windows-x64[-cuda].zip.
#   powershell -ExecutionPolicy Bypass -File packaging\build-windows.ps1          # CPU build
#   powershell -ExecutionPolicy Bypass -File packaging\build-windows.ps1 -Cuda    # CUDA (needs the CUDA toolkit)
# Needs Python 3.10+ and Visual Studio's C++ build tools (llama-cpp-python builds from source).
param([switch]$Cuda)
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
python -m venv build\venv-windows
$py = "build\venv-windows\Scripts\python.exe"
$version = & $py -c "import tomllib; print(tomllib.load(open('pyproject.toml','rb'))['project']['version'])"
$suffix = ""
if ($Cuda) {
    $env:CMAKE_ARGS = "-DGGML_CUDA=on"
    $suffix = "-cuda"
    & $py -m pip install --no-cache-dir --force-reinstall "llama-cpp-python==0.3.36"
}
& $py -m pip install -e ".[bundled,gui,hub,nvidia]" "pyinstaller>=6.10"
& $py -m PyInstaller packaging\fastslow.spec --noconfirm --clean --distpath dist --workpath build\pyinstaller
# A GUI executable has no console: the self-test's exit status is what counts here.
$check = Start-Process -FilePath "dist\FastSlow\fastslow.exe" -ArgumentList "--self-test" -Wait -PassThru
if ($check.ExitCode -ne 0) { throw "the bundle's self-test failed ($($check.ExitCode))" }
Compress-Archive -Path dist\FastSlow -DestinationPath "dist\FastSlow-$version-windows-x64$suffix.zip" -Force
Write-Host "built dist\FastSlow and dist\FastSlow-$version-windows-x64$suffix.zip"
