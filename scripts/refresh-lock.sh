#!/usr/bin/env bash
# Refresh requirements-lock.txt: resolve the core (with its dev extras) and every plugin under
# plugins/ unpinned in a fresh virtual environment, then freeze what got installed. `make run`
# and `make test` install from the lock; a plain `pip install ssl-bench` stays unpinned.
# Usage: scripts/refresh-lock.sh   (or: make lock)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
plugin_args=()
for dir in plugins/*/; do
    [ -f "$dir/pyproject.toml" ] && plugin_args+=(-e "$dir")
done
"$tmp/venv/bin/python" -m pip install --quiet -e '.[dev]' "${plugin_args[@]}"
{
    echo "# The reference environment of ssl-bench: make run and make test install with"
    echo "# pip install -c requirements-lock.txt. Refresh with: make lock"
    echo "# (python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())'), $(uname -m))"
    "$tmp/venv/bin/python" -m pip freeze --exclude-editable
} > requirements-lock.txt.new
mv requirements-lock.txt.new requirements-lock.txt
echo "wrote requirements-lock.txt ($(grep -vc '^#' requirements-lock.txt) pins)"
