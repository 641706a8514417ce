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

# Puts FILE in the page cache as a replay of a capture saved on disk finds
# it: written back, dropped, and read again. What a writer leaves in the
# cache depends on how it wrote, and on how long the pages sat since (a
# machine that reclaims idle memory, as this project's VM does, evicts
# parts, which come back in whatever pieces the next read asks for); a
# read from disk leaves what the kernel's readahead makes of the file,
# the same each time. A mapped replay's page faults
# follow the folio sizes: on this project's VM (ext4, Linux 6.18) the
# streams capture costs 8.6 k minor faults read back, 14.9 k as
# connbal-gen wrote it, 30.6 k after a night in the cache.
as_read_from_disk() {
  python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"
  cat "$1" >/dev/null
}
