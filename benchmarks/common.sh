# Shared by run_seed.sh and run_convert.sh (sourced): folders and defaults,
# the log, and the figures of a `/usr/bin/time -v` report.
#
#   BUILD BENCH_DIR SHAPE JOBS PYTHON: see the scripts' headers.

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${BUILD:-$root/build}
py=${PYTHON:-/usr/bin/python3}
dir=${BENCH_DIR:-/tmp/vtbench}
shape=${SHAPE:-546,820,820}
jobs=${JOBS:-2}

# say TEXT: to stderr and to $log
say() { echo "$@" | tee -a "$log" >&2; }

# the machine, one line for the log
machine() {
    echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(free -g | awk '/^Mem:/{print $2}') GiB RAM, kernel $(uname -r)"
}

# time_wall/time_rss/time_cpu FILE: wall seconds, peak RSS in MiB, CPU % of a /usr/bin/time -v report
time_wall() { awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$1"; }
time_rss() { awk -F': ' '/Maximum resident set size/{printf "%.1f", $2/1024}' "$1"; }
time_cpu() { awk -F': ' '/Percent of CPU/{print $2}' "$1"; }
