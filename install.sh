#!/usr/bin/env bash
# Builds and installs the `hearth` binary.
#   ./install.sh                      installs to /usr/local/bin when writable,
#                                     else ~/.local/bin
#   BINDIR=$HOME/bin ./install.sh     installs to that folder
#   PREFIX=$HOME/.local ./install.sh  installs to $PREFIX/bin (BINDIR wins)
# When the folder is not on PATH it prints the full path to run.
#   ./install.sh --systemd [OPTIONS]  also writes a systemd unit with
#                                     `hearth install-service OPTIONS` (e.g.
#                                     --dir, --user, --unit-dir, --dry-run)
# Needs Go 1.26 or newer and a C compiler (SQLite is built with cgo).
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "install.sh: $*" >&2; exit 1; }

systemd=0
service_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --systemd) systemd=1 ;;
    *)
      [ "$systemd" = 1 ] || die "unknown option $1 (options: --systemd [hearth install-service options])"
      service_args+=("$1") ;;
  esac
  shift
done

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  else
    die "Go is not installed (need go 1.26 or newer: https://go.dev/dl/)"
  fi
fi
goversion=$(go env GOVERSION)            # go1.26.8
minor=$(echo "$goversion" | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
if [ -z "$minor" ] || [ "$minor" -lt 26 ]; then
  die "found $goversion; Hearth needs go 1.26 or newer (https://go.dev/dl/)"
fi
cc="${CC:-gcc}"
if ! command -v "$cc" >/dev/null 2>&1; then
  if command -v cc >/dev/null 2>&1; then
    cc=cc
  else
    echo "install.sh: no C compiler found (looked for ${CC:-gcc} and cc); SQLite (mattn/go-sqlite3) needs cgo." >&2
    echo "  Debian/Ubuntu: apt-get install -y gcc    Fedora: dnf install gcc    macOS: xcode-select --install" >&2
    exit 1
  fi
fi

if [ -n "${BINDIR:-}" ]; then
  bindir="$BINDIR"
elif [ -n "${PREFIX:-}" ]; then
  bindir="$PREFIX/bin"
elif [ -w /usr/local/bin ] || { [ ! -e /usr/local/bin ] && [ -w /usr/local ]; }; then
  bindir=/usr/local/bin
else
  bindir="$HOME/.local/bin"
fi
mkdir -p "$bindir" || die "cannot create $bindir (set BINDIR to a folder you can write)"
bindir=$(cd "$bindir" && pwd)
echo "install.sh: building hearth with $goversion and $cc ..."
CGO_ENABLED=1 CC="$cc" go build -o "$bindir/hearth.tmp" ./cmd/hearth
mv "$bindir/hearth.tmp" "$bindir/hearth"
echo "installed $bindir/hearth"
if [ "$systemd" = 1 ]; then
  "$bindir/hearth" install-service --binary "$bindir/hearth" ${service_args[@]+"${service_args[@]}"} ||
    die "writing the systemd unit failed"
fi
case ":$PATH:" in
  *":$bindir:"*) ;;
  *) echo "note: $bindir is not on your PATH, so run hearth by its full path:"
     echo "    $bindir/hearth serve"
     echo "  or add the folder to PATH: export PATH=\"$bindir:\$PATH\"" ;;
esac
