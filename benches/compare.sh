#!/usr/bin/env bash
# Two builds of connbal, run in turns on the same generated workloads: the
# way to tell a change from the host's drift on a shared machine, where the
# same binary's medians move by half within minutes (README, "Measuring on
# this machine").
#
#   benches/compare.sh REV                  # REV against the working tree, 20 runs each
#   COMPARE_RUNS=30 benches/compare.sh main~1
#   BENCH_SCALE=0.25 benches/compare.sh REV # smaller workloads
#
# REV is built in a temporary worktree (its own target directory); the
# other build is the checkout's own. For each workload (throughput.sh's
# syn, streams -a and wide, from benches/workloads.sh, read from the
# mapped file, which is first read back from disk into the page cache)
# the two binaries alternate, run for run, after one untimed run of each;
# every run's output is compared with the generator's ground truth. Each
# row: mean wall and CPU (user + system) seconds with the standard error
# of the mean, the median wall, and the new build's mean against the
# old's. No pass/fail on time.
set -euo pipefail
cd "$(dirname "$0")/.."

rev=${1:?usage: benches/compare.sh REV (a commit to compare the working tree against)}
runs=${COMPARE_RUNS:-20}
scale=${BENCH_SCALE:-1}
old_commit=$(git rev-parse --verify --quiet "$rev^{commit}") || { echo "not a commit: $rev"; exit 1; }

dir=$(mktemp -d /tmp/connbal-compare.XXXXXX)
tree="$dir/tree"
cleanup() {
  git worktree remove --force "$tree" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

cargo build --release --quiet
cp target/release/connbal "$dir/new"
git worktree add --quiet --detach "$tree" "$old_commit"
# The old build starts from a copy of this checkout's release build:
# only the crate itself is compiled again, not its dependencies.
mkdir -p "$tree/target"
cp -r target/release "$tree/target/"
(cd "$tree" && cargo build --release --quiet --bin connbal)
cp "$tree/target/release/connbal" "$dir/old"
gen=target/release/connbal-gen

# shellcheck source=benches/workloads.sh
. benches/workloads.sh

echo "# connbal: $(git rev-parse --short "$old_commit") (old) against the working tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ', modified') (new)"
echo "# scale $scale, $runs runs of each in turns, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u '+%Y-%m-%d %H:%M')"
printf '%-8s %-4s %16s %16s %8s %9s\n' workload build wall_s cpu_s median new/old

compare() {
  local name=$1
  # shellcheck disable=SC2046 # the flags are words
  "$gen" -o "$dir/$name.snoop" --truth "$dir/$name.truth" $(workload_gen_flags "$name") 2>/dev/null
  local flag
  flag=$(workload_flags "$name")
  # The page cache as a replay of a saved capture finds it (workloads.sh).
  as_read_from_disk "$dir/$name.snoop"
  # Each run's wall time by the clock, to the microsecond, and its CPU
  # time from the kernel's accounting of the child (wait4), not from
  # /usr/bin/time's hundredths, which read 0 for a small workload.
  python3 - "$name" "$runs" "$dir" "$flag" <<'PY'
import filecmp, os, statistics as st, subprocess, sys, time
name, runs, d, flag = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
capture, truth, out = f"{d}/{name}.snoop", f"{d}/{name}.truth", f"{d}/{name}.out"
def run(build):
    argv = [f"{d}/{build}", "-q"] + ([flag] if flag else []) + [capture]
    with open(out, "wb") as o:
        t = time.perf_counter()
        p = subprocess.Popen(argv, stdout=o, stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
    if status != 0:
        sys.exit(f"{build} exited with status {status} on {name}")
    return wall, ru.ru_utime + ru.ru_stime, filecmp.cmp(out, truth, shallow=False)
for build in ("old", "new"):
    run(build)  # untimed: the first run after a pause pays the host for fresh pages
times = {"old": [], "new": []}
ok = "ok"
for _ in range(runs):
    for build in ("old", "new"):
        wall, cpu, same = run(build)
        times[build].append((wall, cpu))
        if not same:
            ok = f"{build} DIFFERS"
def sem(xs):
    return st.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else 0.0
mean = {}
for build in ("old", "new"):
    wall = [w for w, _ in times[build]]
    cpu = [c for _, c in times[build]]
    mean[build] = st.mean(wall)
    ratio = ""
    if build == "new":
        ratio = f"{mean['new'] / mean['old']:9.3f}" if mean["old"] > 0 else f"{'-':>9}"
    print(f"{name:<8} {build:<4} {st.mean(wall):8.3f} ± {sem(wall):5.3f} {st.mean(cpu):8.3f} ± {sem(cpu):5.3f} "
          f"{st.median(wall):8.3f} {ratio:>9}" + (f"  truth: {ok}" if build == "new" else ""))
PY
}

for name in syn streams wide; do
  compare "$name"
done
