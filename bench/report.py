"""Writes bench/report.sh's report from the comparisons the benchmarks recorded.

    report.py OUTDIR NAME...

For each benchmark NAME, in order: OUTDIR/results/NAME.tsv (lines of bench/results.py)
and OUTDIR/results/NAME.run (name, status, load average before and after, seconds,
runs) from its latest run. Writes OUTDIR/REPORT.md and OUTDIR/ratios.svg. Every ratio is expressed as "cost": ccrun's time over the peer's (for
throughputs, the peer's over ccrun's), so below 1 always means ccrun did better.
"""
import datetime
import html
import math
import os
import platform
import subprocess
import sys


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not installed"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def read_tsv(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def cost(row):
    """ccrun's cost relative to the peer's: < 1 means ccrun did better."""
    ccrun, peer, better = float(row[3]), float(row[5]), row[8]
    if ccrun <= 0 or peer <= 0:
        return None
    return ccrun / peer if better == "lower" else peer / ccrun


def fmt(value, unit):
    return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"


def svg_chart(rows):
    """A horizontal bar chart of the costs on a log scale, centred on 1."""
    bars = [(f"{r[0]}: {r[1]} — {r[2]} vs {r[4]}", cost(r)) for r in rows if cost(r)]
    longest = max((len(label) for label, _ in bars), default=20)
    label_w, plot_w, bar_h, top = 20 + int(6.6 * longest), 420, 22, 50
    lo, hi = 0.01, 10.0
    for _, c in bars:
        lo, hi = min(lo, c / 1.5), max(hi, c * 1.5)
    lo, hi = 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))

    def x(v):
        return label_w + plot_w * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    height = top + bar_h * len(bars) + 40
    width = label_w + plot_w + 70
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">ccrun against its peers: '
        f'ccrun\'s time / the peer\'s (log scale; below 1: ccrun faster)</text>',
    ]
    decade = lo
    while decade <= hi * 1.0001:
        gx = x(decade)
        out.append(f'<line x1="{gx:.1f}" y1="{top - 8}" x2="{gx:.1f}" y2="{height - 30}" '
                   f'stroke="#ddd"/>')
        out.append(f'<text x="{gx:.1f}" y="{height - 14}" text-anchor="middle">{decade:g}</text>')
        decade *= 10
    one = x(1.0)
    for i, (label, c) in enumerate(bars):
        y = top + i * bar_h
        x0, x1 = sorted((one, x(c)))
        colour = "#2a9d4b" if c <= 1 else "#d0582a"
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">'
                   f'{html.escape(label)}</text>')
        out.append(f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 1):.1f}" '
                   f'height="{bar_h - 8}" fill="{colour}"/>')
        tx = x1 + 4
        shown = f"{c:.2f}" if c >= 0.01 else f"{c:.1e}"
        out.append(f'<text x="{tx:.1f}" y="{y + 15}">{shown}</text>')
    out.append(f'<line x1="{one:.1f}" y1="{top - 8}" x2="{one:.1f}" y2="{height - 30}" '
               f'stroke="black"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    outdir, names = sys.argv[1], sys.argv[2:]
    rows, runlog = [], []
    for name in names:
        base = os.path.join(outdir, "results", name)
        if os.path.exists(base + ".run"):
            runlog += read_tsv(base + ".run")
            rows += read_tsv(base + ".tsv") if os.path.exists(base + ".tsv") else []
    md = [
        "# ccrun benchmark report",
        "",
        f"Written by `bench/report.sh` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
        " (each benchmark's runs and time in the last table).",
        f"Machine: {os.cpu_count()} × {cpu_model()}, Linux {platform.release()}.",
        "Peers: " + "; ".join(version(c) for c in (
            ["crun", "--version"], ["runc", "--version"], ["podman", "--version"],
            ["skopeo", "--version"], ["tar", "--version"])) + ".",
        "",
        "Every figure is a median over the runs given, each peer measured in the same run as",
        "ccrun. *cost* is ccrun's time over the peer's (for throughput, the peer's over ccrun's):",
        "below 1, ccrun did better.",
        "",
        "![ratios](ratios.svg)",
        "",
        "| benchmark | what | ccrun | median | peer | median | runs | cost |",
        "|---|---|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        c = cost(r)
        shown = "" if c is None else (f"{c:.2f}" if c >= 0.01 else f"{c:.1e}")
        md.append(f"| {r[0]} | {r[1]} | {r[2]} | {fmt(float(r[3]), r[6])} | {r[4]} | "
                  f"{fmt(float(r[5]), r[6])} | {r[7]} | {shown} |")
    md += [
        "",
        "## The runs",
        "",
        "| benchmark | status | runs | load average before | after | seconds | log |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, status, before, after, secs, runs in runlog:
        md.append(f"| {name} | {status} | {runs} | {before} | {after} | {secs} | [log](logs/{name}.log) |")
    with open(os.path.join(outdir, "REPORT.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(outdir, "ratios.svg"), "w") as f:
        f.write(svg_chart(rows))


if __name__ == "__main__":
    main()
