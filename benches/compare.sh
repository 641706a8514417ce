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
# other build is the checkout's own. For each workload (the syn, streams
# -a and wide workloads of throughput.sh, read from the mapped file) the
# two binaries alternate, run for run, after one untimed run of each;
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
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }

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

n() { python3 -c "import math; print(max(1, int(round($1 * $scale))))"; }

echo "# connbal: $(git rev-parse --short "$old_commit") (old) against the working tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ', modified') (new)"
echo "# scale $scale, $runs runs of each in turns, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u '+%Y-%m-%d %H:%M')"
printf '%-8s %-4s %16s %16s %8s %9s\n' workload build wall_s cpu_s median new/old

compare() {
  local name=$1; shift
  "$gen" -o "$dir/$name.snoop" --truth "$dir/$name.truth" "$@" 2>/dev/null
  local flags=()
  [ "$name" = streams ] && flags=(-a)
  cat "$dir/$name.snoop" >/dev/null
  "$dir/old" -q "${flags[@]}" "$dir/$name.snoop" >/dev/null
  "$dir/new" -q "${flags[@]}" "$dir/$name.snoop" >/dev/null
  local ok=ok
  for _ in $(seq "$runs"); do
    for build in old new; do
      /usr/bin/time -f "$build %e %U %S" "$dir/$build" -q "${flags[@]}" "$dir/$name.snoop" \
        >"$dir/$name.out" 2>>"$dir/$name.times"
      cmp -s "$dir/$name.out" "$dir/$name.truth" || ok="$build DIFFERS"
    done
  done
  python3 - "$name" "$ok" "$dir/$name.times" <<'PY'
import statistics as st, sys
name, ok, path = sys.argv[1:4]
runs = {"old": [], "new": []}
for line in open(path):
    parts = line.split()
    if len(parts) == 4 and parts[0] in runs:
        runs[parts[0]].append((float(parts[1]), float(parts[2]) + float(parts[3])))
def sem(xs):
    return st.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else 0.0
means = {}
for build in ("old", "new"):
    wall = [w for w, _ in runs[build]]
    cpu = [c for _, c in runs[build]]
    means[build] = st.mean(wall)
    ratio = f"{means['new'] / means['old']:9.3f}" if build == "new" else f"{'':9}"
    print(f"{name:<8} {build:<4} {st.mean(wall):8.3f} ± {sem(wall):5.3f} {st.mean(cpu):8.3f} ± {sem(cpu):5.3f} "
          f"{st.median(wall):8.3f} {ratio}" + (f"  truth: {ok}" if build == "new" else ""))
PY
}

compare syn --connections "$(n 3440000)" --clients 50 --services 40
compare streams --streams --connections "$(n 1470000)" --clients 50 --services 40
compare wide --connections "$(n 200000)" --clients 1000 --services 100 --lookup-every 1000000
