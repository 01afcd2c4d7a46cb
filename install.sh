#!/usr/bin/env bash
# Builds and installs the `hearth` binary.
#   ./install.sh                      installs to $PREFIX/bin; PREFIX defaults to
#                                     /usr/local when writable, else ~/.local
#   PREFIX=$HOME/.local ./install.sh
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

if [ -n "${PREFIX:-}" ]; then
  prefix="$PREFIX"
elif [ -w /usr/local/bin ] || { [ ! -e /usr/local/bin ] && [ -w /usr/local ]; }; then
  prefix=/usr/local
else
  prefix="$HOME/.local"
fi
mkdir -p "$prefix/bin" || die "cannot create $prefix/bin (set PREFIX to a folder you can write)"
echo "install.sh: building hearth with $goversion and $cc ..."
CGO_ENABLED=1 CC="$cc" go build -o "$prefix/bin/hearth.tmp" ./cmd/hearth
mv "$prefix/bin/hearth.tmp" "$prefix/bin/hearth"
echo "installed $prefix/bin/hearth"
if [ "$systemd" = 1 ]; then
  "$prefix/bin/hearth" install-service --binary "$prefix/bin/hearth" ${service_args[@]+"${service_args[@]}"} ||
    die "writing the systemd unit failed"
fi
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "note: $prefix/bin is not on your PATH; add it (export PATH=\"$prefix/bin:\$PATH\") or run $prefix/bin/hearth" ;;
esac
