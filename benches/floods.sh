#!/usr/bin/env bash
# Peak RSS of connbal under hostile floods mixed into legitimate traffic.
#
#   benches/floods.sh                  # full size: 4M flood events each
#   FLOOD_SCALE=0.05 benches/floods.sh # what CI runs
#
# Each flood comes from one client (10.200.0.1) inside a 1M-connection
# workload (whole streams for the -a 4-tuple flood); connbal reads it through a pipe. The legitimate rows must equal
# the generator's ground truth (the flood client's rows are left out).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${FLOOD_SCALE:-1}
dir=$(mktemp -d /tmp/connbal-floods.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cargo build --release --quiet
n() { python3 -c "print(max(1, int(round($1 * $scale))))"; }
conns=$(n 1000000)
flood=$(n 4000000)

printf '%-8s %10s %12s %9s %9s  %s\n' flood events records wall_s rss_MiB "legit rows / counters"
run() {
  local kind=$1 flags=$2 gen_flags=$3
  target/release/connbal-gen -o "$dir/$kind.snoop" --truth "$dir/$kind.truth" --connections "$conns" \
    --noise 0 --flood "$kind" --flood-count "$flood" $gen_flags 2>"$dir/$kind.gen"
  local records
  records=$(sed -E 's/connbal-gen: ([0-9]+) records.*/\1/' "$dir/$kind.gen")
  cat "$dir/$kind.snoop" | /usr/bin/time -f '%e %M' target/release/connbal $flags --format json \
    >"$dir/$kind.json" 2>"$dir/$kind.err"
  local wall rss
  read -r wall rss < <(tail -1 "$dir/$kind.err")
  python3 - "$dir/$kind.json" "$dir/$kind.truth" "$kind" "$flood" "$records" "$wall" "$rss" <<'PY'
import json, sys, ipaddress
doc, truth, kind, flood, records, wall, rss = sys.argv[1:]
d = json.load(open(doc))
def pad(a):
    ip = ipaddress.ip_address(a)
    if ip.version == 4:
        return ".".join(f"{int(o):03d}" for o in a.split("."))
    return ":".join(ip.exploded.split(":"))
def backend(a, p):
    port = "?" if p is None else str(p)
    ip = ipaddress.ip_address(a)
    return f"{pad(a)}:{port}" if ip.version == 4 else f"[{pad(a)}]:{port}"
rows = "".join(f"{pad(r['client'])}\t{backend(r['backend'], r['port'])}\t{r['conns']}\t{r['dns']}\t{r['name']}\n"
               for r in d["rows"] if r["client"] != "10.200.0.1")
ok = "legit rows ok" if rows == open(truth).read() else "LEGIT ROWS DIFFER"
s = d["stats"]
keys = ["pending_evicted", "tables_full", "srv_targets_evicted", "conns_not_tracked"]
counters = ", ".join(f"{k} {s[k]}" for k in keys if s[k])
print(f"{kind:<8} {int(flood):>10,} {int(records):>12,} {float(wall):>9.2f} {int(rss)/1024:>9.1f}  {ok}; {counters}")
PY
}
run queries "" ""
run names "" ""
run srv "" ""
# -a reads whole streams (a SYN-only capture never closes a connection, so
# its client ports would wrap onto 4-tuples still open).
run tuples "-a" "--streams"
