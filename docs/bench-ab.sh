#!/bin/bash
# bench-ab.sh RATE NAME... : builds side by side with `hearth bench pairs --wire`
# (200 users, 200-byte messages, 20 s), one fresh server folder per run, in
# the order given (alternate them: base new base new). NAME is a binary
# /tmp/hearth-NAME (e.g. built from `git archive COMMIT`). BENCH=PATH drives
# every server with the same load generator; OUT=DIR keeps each report;
# FLAGS="--quic" adds bench flags (e.g. the native QUIC transport).
# One JSON line per run (docs/benchmarks.md).
set -u
rate=$1; shift
out=${OUT:-}
for b in "$@"; do
  bin=/tmp/hearth-$b
  d=$(mktemp -d /tmp/ab-XXXX); $bin init --dir $d --domain localhost --listen 127.0.0.1:0 >/dev/null 2>&1
  jq '.limits.send_per_second = 1000000 | .limits.send_burst = 1000000' $d/config.json >$d/c && mv $d/c $d/config.json
  $bin serve --dir $d --log-level warn 2>$d/serve.log & sp=$!
  while [ ! -s $d/serve.addr ]; do sleep 0.1; done
  l0=$(cut -d' ' -f1 /proc/loadavg)
  ${BENCH:-$bin} bench --dir $d --json ${FLAGS:-} pairs --wire --users 200 --rate $rate --duration 20s --size 200 >$d/rep.json 2>$d/bench.err
  [ -n "$out" ] && cp $d/rep.json $out/rep-$rate-$b-$(date +%H%M%S).json
  jq -c --arg b $b --arg l0 $l0 --arg f "${FLAGS:-}" '{bin: $b, flags: $f, rate: '$rate', load0: $l0, dlv: .delivered_per_second, lost: .lost, dup: .duplicates, cpu: .cpu_per_message.server_ms, bcpu: .cpu_per_message.bench_ms, gc: .machine.bench_gc_percent, p50: .latency.p50_ms, p99: .latency.p99_ms, late99: .send_lateness.p99_ms, srv99: .server_latency.p99_ms, r2c99: .server_stages.receive_to_commit.p99_ms, fs90: .server_stages.writer_fsync.p90_ms, fs99: .server_stages.writer_fsync.p99_ms, tx: .server_stages.writer_transaction.count}' $d/rep.json
  kill $sp; wait $sp; rm -rf $d
done
