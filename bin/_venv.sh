# Sourced by bin/run, bin/manage and bin/test: create .venv and install the project (again
# only when pyproject.toml changes). $1 names the extras to install, e.g. "dev".
ensure_venv() {
    local extras="$1" python="${PYTHON:-python3}" stamp log
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "molecule-uploads needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
        exit 1
    fi
    if [ ! -x .venv/bin/python ]; then
        "$python" -m venv .venv >/dev/null 2>&1 || {
            rm -rf .venv
            echo "could not create .venv: on Debian/Ubuntu, apt-get install python3-venv" >&2
            exit 1
        }
    fi
    stamp=".venv/.installed-${extras:-base}-$(sha256sum pyproject.toml | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        log=".venv/pip-install.log"
        echo "installing molecule-uploads${extras:+[$extras]} into .venv (about 20 s the first time; log: $log)" >&2
        if ! { .venv/bin/python -m pip install --quiet --upgrade pip &&
            .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"; } >"$log" 2>&1; then
            echo "could not install molecule-uploads${extras:+[$extras]} into .venv (see $log)" >&2
            exit 1
        fi
        touch "$stamp"
    fi
}
