#!/usr/bin/env bash
# Whole-program throughput of connbal on generated workloads.
#
#   benches/throughput.sh                 # full size (SYN: ~12.7M records, 1.4 GB)
#   BENCH_SCALE=0.05 benches/throughput.sh  # what CI runs
#   BENCH_RUNS=5 benches/throughput.sh      # runs of each measure (default 3)
#   BENCH_WARMUP=0 benches/throughput.sh    # no untimed run first (default 1)
#
# For each workload: generate it (deterministic, with ground truth) and time
# connbal on the file (mmap) as the generator left it in the page cache
# (written); then drop the file from the page cache and read it back, as a
# replay of a capture on disk finds it, and time `cat FILE >/dev/null`,
# connbal on the file (file) and connbal through a pipe (pipe). Each row:
# records/s, MB/s, wall and CPU seconds, the ratio to cat, peak RSS and
# minor page faults (/usr/bin/time -v) of the run with the median wall
# time, and the fastest and slowest wall times: on a shared machine single
# runs wander. How the file's pages came into the cache moves the mapped
# runs: the faults of a map depend on the page cache's folio sizes
# (benches/workloads.sh, as_read_from_disk). Each mode first runs once
# untimed: on a VM that hands freed memory back to its host (virtio-balloon
# free page reporting), the first run after a pause pays the host for
# every fresh page (wide: 0.30 against 0.13 s). Before each workload it
# prints the memory latency at 1 to 64 MiB (benches/memlat.rs), which
# moves with the host's other tenants and connbal's speed with it, and
# each row the CPU time the hypervisor took from the VM while its run ran
# (steal_s: both cores, from /proc/stat, whoever was running). Every
# run's output is compared with the generator's ground truth. No
# pass/fail on time.
set -euo pipefail
cd "$(dirname "$0")/.."

scale=${BENCH_SCALE:-1}
runs=${BENCH_RUNS:-3}
warmup=${BENCH_WARMUP:-1}
dir=${BENCH_DIR:-$(mktemp -d /tmp/connbal-bench.XXXXXX)}
keep=${BENCH_KEEP:-0}
mkdir -p "$dir"
[ "$keep" = 1 ] || trap 'rm -rf "$dir"' EXIT

command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }
cargo build --release --quiet
gen=target/release/connbal-gen
bin=target/release/connbal

# shellcheck source=benches/workloads.sh
. benches/workloads.sh

# The VM's steal time so far, in clock ticks (all cores).
steal_ticks() { awk '/^cpu /{print $9; exit}' /proc/stat 2>/dev/null || echo 0; }
ticks_per_s=$(getconf CLK_TCK 2>/dev/null || echo 100)

# measure NAME FILE FLAGS...: prints one table row per mode. The file is
# timed twice over: as the generator left it in the page cache (written),
# then read back as a replay of a capture on disk finds it (file and pipe,
# in turns; see as_read_from_disk).
measure() {
  local name=$1 file=$2; shift 2
  local flags=("$@")
  local records bytes
  records=$(cat "$dir/$name.records")
  bytes=$(stat -c %s "$file")
  cache_state "$name" "$file" "as written"
  # What the other tenants leave of the shared cache right now: the
  # aggregator's tables are probed at random, and syn's fill about 20 MiB
  # (benches/memlat.rs).
  cargo bench --quiet --bench memlat | sed "s/^# /# $name: /" >&2
  local -A ok=([written]=ok [file]=ok [pipe]=ok)
  timed_runs "$name" "$file" written
  as_read_from_disk "$file"
  cache_state "$name" "$file" "read back"
  local cat_wall
  # (to the millisecond: /usr/bin/time's hundredths read 0.00 for a
  # small file, which made the ratio meaningless)
  cat_wall=$(python3 -c 'import subprocess, sys, time
t = time.perf_counter()
subprocess.run(["cat", sys.argv[1]], stdout=subprocess.DEVNULL, check=True)
print(f"{time.perf_counter() - t:.4f}")' "$file")
  timed_runs "$name" "$file" file pipe
  for mode in written file pipe; do
    local tvs=()
    for run in $(seq "$runs"); do
      tvs+=("$dir/$name.$mode.$run.time")
    done
    python3 - "$records" "$bytes" "$cat_wall" "$name" "$mode" "${ok[$mode]}" "$ticks_per_s" "${tvs[@]}" <<'PY'
import sys, re
records, size, cat_wall, name, mode, ok, ticks_per_s = sys.argv[1:8]
def run(tv):
    t = open(tv).read()
    def field(label):
        m = re.search(re.escape(label) + r":\s*(.+)", t)
        return m.group(1).strip() if m else "0"
    parts = [float(p) for p in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    wall = parts[-1] + 60 * parts[-2] + (3600 * parts[-3] if len(parts) > 2 else 0)
    user, sys_ = float(field("User time (seconds)")), float(field("System time (seconds)"))
    rss = int(field("Maximum resident set size (kbytes)")) / 1024
    faults = int(field("Minor (reclaiming a frame) page faults"))
    steal = int(field("Steal ticks")) / float(ticks_per_s)
    return max(wall, 0.001), user, sys_, rss, steal, faults
runs = sorted((run(tv) for tv in sys.argv[8:]), key=lambda r: r[0])
wall, user, sys_, rss, steal, faults = runs[(len(runs) - 1) // 2]
records, size, cat_wall = int(records), int(size), float(cat_wall)
spread = f"{runs[0][0]:.2f}-{runs[-1][0]:.2f}"
print(f"{name:<10} {mode:<7} {records:>11,} {size/1e6:>9.1f} {wall:>7.2f} {records/wall/1e6:>8.2f} "
      f"{size/wall/1e6:>8.0f} {user:>6.2f} {sys_:>6.2f} {steal:>7.2f} {wall/max(cat_wall,0.001):>7.1f} {rss:>8.1f} {faults/1e3:>8.1f} {spread:>11}  {ok}")
PY
  done
}

# cache_state NAME FILE WHEN: how much of the file the runs will read from
# memory (a machine that reclaims idle page cache, DAMON pageout as on this
# project's VM, may have evicted part of it).
cache_state() {
  if command -v fincore >/dev/null; then
    fincore -b -n -o RES,SIZE "$2" 2>/dev/null |
      awk -v n="$1" -v w="$3" '{printf "# %s: %.0f%% of the file in the page cache, %s\n", n, $2 ? 100 * $1 / $2 : 0, w}' >&2 || true
  fi
}

# timed_runs NAME FILE MODES...: runs connbal in each mode (written and
# file: on the file, mapped; pipe: through cat), the modes taking turns so
# that none has all the first runs (which pay for whatever the machine
# was doing before). Called from measure, whose flags it runs with and
# whose ok[MODE] it sets to DIFFERS if an output is not the ground truth.
timed_runs() {
  local name=$1 file=$2; shift 2
  local mode run
  if [ "$warmup" = 1 ]; then
    # Untimed, once in each way of reading.
    "$bin" -q "${flags[@]}" "$file" >/dev/null
    [[ " $* " = *" pipe "* ]] && cat "$file" | "$bin" -q "${flags[@]}" >/dev/null
  fi
  for run in $(seq "$runs"); do
    for mode in "$@"; do
      local out="$dir/$name.$mode.out" tv="$dir/$name.$mode.$run.time"
      local steal_before
      steal_before=$(steal_ticks)
      if [ "$mode" = pipe ]; then
        cat "$file" | /usr/bin/time -v "$bin" -q "${flags[@]}" >"$out" 2>"$tv"
      else
        /usr/bin/time -v "$bin" -q "${flags[@]}" "$file" >"$out" 2>"$tv"
      fi
      echo "Steal ticks: $(($(steal_ticks) - steal_before))" >>"$tv"
      cmp -s "$out" "$dir/$name.truth" || ok[$mode]=DIFFERS
    done
  done
}

header() {
  printf '%-10s %-7s %11s %9s %7s %8s %8s %6s %6s %7s %7s %8s %8s %11s  %s\n' \
    workload mode records MB wall_s Mrec/s MB/s user_s sys_s steal_s x_cat rss_MiB minflt_k runs_wall_s truth
}

gen_workload() {
  local name=$1; shift
  "$gen" -o "$dir/$name.snoop" --truth "$dir/$name.truth" "$@" 2>"$dir/$name.gen"
  sed -E 's/connbal-gen: ([0-9]+) records.*/\1/' "$dir/$name.gen" >"$dir/$name.records"
}

echo "# connbal throughput, scale $scale, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u +%Y-%m-%d)"
echo "# $(rustc --version)"
echo "# each row: the run with the median wall time of $runs (runs_wall_s: fastest-slowest)$([ "$warmup" = 1 ] && echo ', after one untimed run')"
# What of the machine's own memory management can move the figures.
damon=$(cat /sys/kernel/mm/damon/admin/kdamonds/0/state 2>/dev/null || echo absent)
reporting=$(cat /sys/module/page_reporting/parameters/page_reporting_order 2>/dev/null || echo absent)
echo "# DAMON (reclaims idle page cache): $damon; free page reporting order: $reporting; THP: $(sed -E 's/.*\[(.*)\].*/\1/' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
cargo bench --quiet --no-run --bench memlat
header
for name in syn streams wide; do
  # Each just before its runs, so that its pages have not sat idle (and
  # been partly evicted) while another's ran.
  # shellcheck disable=SC2046 # the flags are words
  gen_workload "$name" $(workload_gen_flags "$name")
  # shellcheck disable=SC2046
  measure "$name" "$dir/$name.snoop" $(workload_flags "$name")
done

echo
echo "# time against table size (clients x services, about two connections per pair)"
printf '%-14s %9s %9s %8s %8s %11s\n' clients_x_svc records rows wall_s rss_MiB runs_wall_s
for size in "100 20" "1000 100" "3000 100" "10000 200"; do
  set -- $size
  c=$(n "$1"); s=$2
  conns=$((c * s * 2))
  name="scale_${c}x$s"
  gen_workload "$name" --connections "$conns" --clients "$c" --services "$s" --lookup-every 1000000 --noise 0
  [ "$warmup" = 1 ] && "$bin" -q "$dir/$name.snoop" >/dev/null
  for run in $(seq "$runs"); do
    /usr/bin/time -f '%e %M' "$bin" -q "$dir/$name.snoop" >"$dir/$name.out" 2>"$dir/$name.time"
    cmp -s "$dir/$name.out" "$dir/$name.truth" || echo "  $name: output differs from the ground truth"
    cat "$dir/$name.time"
  done | sort -n | awk -v n="$runs" -v size="${c}x$s" -v records="$(cat "$dir/$name.records")" -v rows="$(wc -l <"$dir/$name.truth")" '
    /^[0-9.]+ [0-9]+$/ {wall[++k] = $1; rss[k] = $2; next}
    {print}
    END {m = int((k + 1) / 2); printf "%-14s %9s %9s %8s %8.1f %11s\n", size, records, rows, wall[m], rss[m] / 1024, wall[1] "-" wall[k]}'
done

echo
echo "# live pipe: 20k records/s for 10 s (scaled), CPU seconds spent by connbal"
secs=$(python3 -c "print(max(2, int(10 * min(1.0, $scale * 20))))")
python3 - "$dir/syn.snoop" "$secs" <<'PY' | /usr/bin/time -f 'live: wall %e s, user %U s, sys %S s, rss %M KB' "$bin" -q >/dev/null
import sys, time, struct
path, secs = sys.argv[1], int(sys.argv[2])
data = open(path, "rb").read()
out = sys.stdout.buffer
out.write(data[:16]); out.flush()
pos, rate, tick = 16, 20000, 0.01
per_tick = int(rate * tick)
start = time.monotonic(); n = 0
while time.monotonic() - start < secs and pos + 24 <= len(data):
    chunk_start = pos
    for _ in range(per_tick):
        if pos + 24 > len(data): break
        pos += struct.unpack(">I", data[pos + 8:pos + 12])[0]
    out.write(data[chunk_start:pos]); out.flush()
    n += 1
    time.sleep(max(0.0, start + n * tick - time.monotonic()))
PY
echo "# (live feeder ran $secs s)"
