#!/usr/bin/env bash
# Builds and installs the `hearth` binary.
#   ./install.sh                 installs to /usr/local/bin (or $PREFIX/bin)
#   PREFIX=$HOME/.local ./install.sh
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  else
    echo "install.sh: Go is not installed (need go 1.26 or newer: https://go.dev/dl/)" >&2
    exit 1
  fi
fi
if ! command -v "${CC:-gcc}" >/dev/null 2>&1 && ! command -v cc >/dev/null 2>&1; then
  echo "install.sh: no C compiler found; SQLite (mattn/go-sqlite3) needs cgo." >&2
  echo "  Debian/Ubuntu: apt-get install -y gcc    Fedora: dnf install gcc    macOS: xcode-select --install" >&2
  exit 1
fi

prefix="${PREFIX:-/usr/local}"
mkdir -p "$prefix/bin"
CGO_ENABLED=1 go build -trimpath -o "$prefix/bin/hearth" ./cmd/hearth
echo "installed $prefix/bin/hearth"
