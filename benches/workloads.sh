# The generated workloads of the whole-program benchmarks, shared by
# throughput.sh and compare.sh so that both measure the same captures.
# Sourced; reads $scale (1 for full size).

# N scaled, at least 1.
n() { python3 -c "print(max(1, int(round($1 * $scale))))"; }

# The connbal-gen flags of workload $1 (syn, streams, wide).
workload_gen_flags() {
  case $1 in
    syn) echo --connections "$(n 3440000)" --clients 50 --services 40 ;;
    streams) echo --streams --connections "$(n 1470000)" --clients 50 --services 40 ;;
    wide) echo --connections "$(n 200000)" --clients 1000 --services 100 --lookup-every 1000000 ;;
    *) echo "no workload $1" >&2; return 1 ;;
  esac
}

# The connbal flags workload $1 is read with (streams: every segment, -a).
workload_flags() {
  [ "$1" = streams ] && echo -a || true
}
