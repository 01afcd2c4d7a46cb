#!/bin/sh
# bench-vs-ejabberd.sh: ejabberd and Hearth side by side, one after the
# other on this machine, with the same users, rate, message size and
# duration; prints one table (docs/benchmarks.md, "Side by side with
# ejabberd").
#
#   PEERS=/scratch/peers docs/bench-vs-ejabberd.sh [-users 200] [-rate 1000]
#       [-size 200] [-duration 20s] [-mam] [-full]
#
# ejabberd: the private instance and the xmppload generator of
# ../shared/peers (PEERS_SRC), set up in PEERS by its setup.sh when they are
# not there yet (that installs the Debian ejabberd package once). Run as
# root (run.sh switches to the ejabberd user). Configs: ejabberd.yml (no
# archive, nothing durable) and with -mam also ejabberd-mam.yml (every
# message archived in mnesia).
#
# Hearth: a fresh `hearth init` + `hearth serve` in a temporary folder
# (send limits raised so that the rate limiter does not set the pace), then
# `hearth bench pairs --wire` (server-only load: the bench's own CPU stays
# well below the server's); with -full also `hearth bench pairs` with full
# MLS clients. HEARTH=path uses that binary instead of building one.
#
# Figures are only worth recording from an idle machine: the table shows
# the 1-minute load average at the start and end of every run.
set -eu

users=200 rate=1000 size=200 duration=20s mam=0 full=0
while [ $# -gt 0 ]; do
	case $1 in
	-users) users=$2; shift 2 ;;
	-rate) rate=$2; shift 2 ;;
	-size) size=$2; shift 2 ;;
	-duration) duration=$2; shift 2 ;;
	-mam) mam=1; shift ;;
	-full) full=1; shift ;;
	*) echo "usage: PEERS=DIR $0 [-users N] [-rate R] [-size BYTES] [-duration D] [-mam] [-full]" >&2; exit 2 ;;
	esac
done
case $users in *[!0-9]* | '') echo "-users must be a number" >&2; exit 2 ;; esac
if [ $((users % 2)) -ne 0 ] || [ "$users" -lt 2 ]; then echo "-users must be even and at least 2" >&2; exit 2; fi

repo=$(cd "$(dirname "$0")/.." && pwd)
: "${PEERS:?set PEERS to a scratch folder outside the repository (ejabberd instance and xmppload go there)}"
export PEERS
PEERS_SRC=${PEERS_SRC:-$repo/../shared/peers}
[ -d "$PEERS_SRC" ] || PEERS_SRC=/work/shared/peers
command -v jq >/dev/null || { echo "jq is needed to read hearth bench --json" >&2; exit 1; }

if ! command -v ejabberdctl >/dev/null || [ ! -x "$PEERS/xmppload" ] || [ ! -x "$PEERS/ejabberd/run.sh" ]; then
	echo "== setting up ejabberd and xmppload in $PEERS (from $PEERS_SRC)" >&2
	sh "$PEERS_SRC/setup.sh" >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-vs-ejabberd.XXXXXX")
serve_pid=
ejabberd_up=
epmd_before=$(epmd -names 2>/dev/null || true)
cleanup() {
	if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
	if [ -n "$ejabberd_up" ]; then (cd "$PEERS/ejabberd" && CFG=$ejabberd_up timeout 60 ./run.sh stop >/dev/null 2>&1) || true; fi
	# The Erlang port mapper ejabberd started: stopped when it was not
	# running before (epmd -kill refuses while a node is registered).
	if [ -z "$epmd_before" ] && command -v epmd >/dev/null; then epmd -kill >/dev/null 2>&1 || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load1() { cut -d' ' -f1 /proc/loadavg; }
rows="$work/rows"
: >"$rows"

# ---- ejabberd ----
# ejabberd CFG LABEL: start the instance, register the users, run xmppload,
# stop it, append a row.
ejabberd_run() {
	cfg=$1 label=$2
	echo "== ejabberd ($cfg): $users users, $rate/s, $size bytes, $duration" >&2
	(cd "$PEERS/ejabberd" && CFG=$cfg timeout 60 ./run.sh start && CFG=$cfg timeout 120 ./run.sh started)
	ejabberd_up=$cfg
	pid=$(pgrep -u ejabberd -n beam.smp)
	"$PEERS/xmppload" -mode register -users "$users" >&2
	l0=$(load1)
	out=$("$PEERS/xmppload" -users "$users" -rate "$rate" -duration "$duration" -size "$size" -pid "$pid")
	l1=$(load1)
	echo "$out" >&2
	(cd "$PEERS/ejabberd" && CFG=$cfg timeout 60 ./run.sh stop >/dev/null)
	ejabberd_up=
	# Wait until the node is gone, so that the next run has the machine.
	for _ in $(seq 1 60); do pgrep -u ejabberd beam.smp >/dev/null || break; sleep 1; done
	res=$(echo "$out" | grep '^RESULT online')
	lat=$(echo "$out" | grep '^RESULT latency')
	field() { echo "$1" | sed -n "s/.*[ ;]$2=\([0-9.]*\).*/\1/p"; }
	deliv=$(field "$res" 'delivered')
	sentr=$(echo "$res" | sed -n 's/.*: sent=\([0-9.]*\)\/s.*/\1/p')
	lost=$(field "$res" 'lost')
	scpu=$(field "$res" 'server cpu')
	ccpu=$(field "$res" 'client cpu')
	echo "$label|$sentr|$deliv|$lost|$(field "$lat" p50)|$(field "$lat" p99)|$(field "$lat" max)|$(awk -v c="$scpu" -v d="$deliv" 'BEGIN{ if (d > 0) printf "%.3f", c / 100 / d * 1000; else print "-" }')|$(awk -v c="$ccpu" -v d="$deliv" 'BEGIN{ if (d > 0) printf "%.3f", c / 100 / d * 1000; else print "-" }')|$l0 → $l1" >>"$rows"
}

ejabberd_run ejabberd.yml "ejabberd, no archive (nothing durable)"
if [ "$mam" = 1 ]; then ejabberd_run ejabberd-mam.yml "ejabberd + MAM archive (durable)"; fi

# ---- Hearth ----
if [ -z "${HEARTH:-}" ]; then
	echo "== building hearth" >&2
	(cd "$repo" && go build -o "$work/hearth" ./cmd/hearth)
	HEARTH=$work/hearth
fi
dir=$work/srv
"$HEARTH" init --dir "$dir" --domain localhost --listen 127.0.0.1:0 >/dev/null
jq '.limits.send_per_second = 1000000 | .limits.send_burst = 1000000' "$dir/config.json" >"$work/config.json"
mv "$work/config.json" "$dir/config.json"
"$HEARTH" serve --dir "$dir" 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 1 300); do [ -s "$dir/serve.addr" ] && break; sleep 0.1; done
[ -s "$dir/serve.addr" ] || { cat "$work/serve.log" >&2; echo "hearth serve did not start" >&2; exit 1; }

# hearth_run LABEL ARGS…: one `hearth bench pairs`, one row.
hearth_run() {
	label=$1
	shift
	echo "== hearth bench pairs $*: $users users, $rate/s, $size bytes, $duration" >&2
	"$HEARTH" bench --dir "$dir" --json --profiles "$work/profiles" pairs "$@" --users "$users" --rate "$rate" \
		--size "$size" --duration "$duration" >"$work/rep.json"
	rm -rf "$work/profiles"
	jq -r --arg name "$label" '[$name,
		(.sent_per_second | floor), (.delivered_per_second | floor), .lost,
		.latency.p50_ms, .latency.p99_ms, .latency.max_ms,
		(.cpu_per_message.server_ms // 0 | . * 1000 | round / 1000),
		(.cpu_per_message.bench_ms // 0 | . * 1000 | round / 1000),
		"\(.machine.loadavg_start[0]) → \(.machine.loadavg_end[0])"] | map(tostring) | join("|")' "$work/rep.json" >>"$rows"
	jq -r '.server_stages // {} | to_entries[] | "  server stage \(.key): p50 \(.value.p50_ms) p90 \(.value.p90_ms) p99 \(.value.p99_ms) max \(.value.max_ms) ms (n=\(.value.count))"' "$work/rep.json" >&2
}

hearth_run "Hearth --wire (E2EE ciphertexts, fsync'd mailboxes)" --wire
if [ "$full" = 1 ]; then hearth_run "Hearth, full MLS clients" ; fi

echo
echo "$users users, $rate msg/s offered, $size-byte messages, $duration; $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ), hearth $(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo
echo "| system | sent/s | delivered/s | lost | p50 ms | p99 ms | max ms | server CPU per message (ms) | load generator CPU per message (ms) | load average (1 min) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
while IFS='|' read -r a b c d e f g h i j; do
	echo "| $a | $b | $c | $d | $e | $f | $g | $h | $i | $j |"
done <"$rows"
