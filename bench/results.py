"""Results of one benchmark for bench/report.sh (imported by the benchmarks' summaries).

Each benchmark script, after printing its own summary, calls `record` for every
comparison it makes between ccrun and a peer measured in the same run. Nothing is
written unless $CCRUN_BENCH_RESULTS names a file (bench/report.sh sets it): then one
tab-separated line per comparison is appended there:

    benchmark  what  ccrun_label  ccrun_value  peer_label  peer_value  unit  runs  better

`better` is `lower` for times and `higher` for throughputs; report.sh turns each line
into a ratio ccrun/peer and says whether ccrun is ahead.
"""
import os
import sys


def record(benchmark, what, ccrun_label, ccrun_value, peer_label, peer_value,
           unit="ms", runs=0, better="lower"):
    path = os.environ.get("CCRUN_BENCH_RESULTS")
    if not path:
        return
    fields = [benchmark, what, ccrun_label, f"{ccrun_value:.6g}", peer_label,
              f"{peer_value:.6g}", unit, str(runs), better]
    if any("\t" in f or "\n" in f for f in fields):
        raise ValueError(f"a field holds a tab or newline: {fields}")
    with open(path, "a") as f:
        f.write("\t".join(fields) + "\n")


if __name__ == "__main__":
    # bench_record in lib.sh: the same from a shell script.
    b, w, cl, cv, pl, pv, unit, runs, better = sys.argv[1:10]
    record(b, w, cl, float(cv), pl, float(pv), unit, int(runs), better)
