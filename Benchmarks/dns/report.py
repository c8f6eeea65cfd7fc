#!/usr/bin/env python3
"""Turn dnsperf outputs into the benchmark's figures.

  report.py record --out RUNS.jsonl --server S --round N --phase max|latency --dnsperf FILE
                   --clk-tck HZ --wall T0 T1 --server-ticks T --server-core-ticks T
                   --client-core-ticks T --client-time FILE
      parses one dnsperf output (its summary; for the latency phase also the per-query lines
      that `dnsperf -v` prints), adds the CPU figures and appends one JSON line to RUNS.jsonl.
  report.py summarize --runs RUNS.jsonl --dir RESULTS_DIR [--title TEXT]
      writes runs.csv, summary.csv and summary.json to RESULTS_DIR and prints the table.

Figures per server are the median over the rounds whose cores other processes left alone
(all rounds if none was); the spread is (max - min) / median across those rounds.
"""

import argparse
import csv
import json
import math
import re
import statistics
import sys
from pathlib import Path

# Share of a core that other processes may take before a run counts as disturbed.
OTHER_LOAD_LIMIT = 0.10

# The expected answer mix of queries.txt: 95% NOERROR (5% of them NODATA), 5% NXDOMAIN.
EXPECTED_NXDOMAIN = 0.05


def parse_dnsperf(text):
    """The summary figures of one dnsperf 2.x run, plus per-query latencies (seconds) when the
    run used -v (lines `> RCODE NAME TYPE LATENCY`)."""
    def number(label):
        m = re.search(rf"^\s*{label}:\s+([0-9.]+)", text, re.M)
        if not m:
            raise ValueError(f"dnsperf output has no '{label}'")
        return float(m.group(1))

    rcodes = {}
    m = re.search(r"^\s*Response codes:\s+(.*)$", text, re.M)
    if m:
        for code, count in re.findall(r"([A-Z]+) (\d+) \(", m.group(1)):
            rcodes[code] = int(count)
    latencies = [float(line.rsplit(None, 1)[1]) for line in text.splitlines()
                 if line.startswith("> ") and re.search(r" [0-9]+\.[0-9]+$", line)]
    return {
        "sent": int(number("Queries sent")),
        "completed": int(number("Queries completed")),
        "lost": int(number("Queries lost")),
        "run_s": number(r"Run time \(s\)"),
        "qps": number("Queries per second"),
        "avg_latency_ms": number(r"Average Latency \(s\)") * 1000,
        "rcodes": rcodes,
        "latencies": latencies,
    }


def percentile(sorted_values, p, lost=0):
    """Nearest-rank percentile; lost queries count as infinitely slow, so heavy loss shows as
    an infinite p99 instead of a flattering one."""
    n = len(sorted_values) + lost
    if n == 0:
        return math.nan
    rank = max(1, math.ceil(p / 100 * n))
    return sorted_values[rank - 1] if rank <= len(sorted_values) else math.inf


def record(args):
    d = parse_dnsperf(args.dnsperf.read_text(errors="replace"))
    wall_s = args.wall[1] - args.wall[0]
    cpu_s = args.server_ticks / args.clk_tck
    client_cpu_s = sum(float(x) for x in args.client_time.read_text().split()[-2:])
    # What the measured processes did not use of their own cores, other processes did.
    other_server_core = max(0.0, args.server_core_ticks / args.clk_tck - cpu_s) / wall_s
    other_client_core = max(0.0, args.client_core_ticks / args.clk_tck - client_cpu_s) / wall_s
    row = {
        "server": args.server, "round": args.round, "phase": args.phase,
        "sent": d["sent"], "answers": d["completed"], "lost": d["lost"],
        "run_s": d["run_s"], "qps": round(d["qps"], 1),
        "cpu_s": cpu_s,
        "cpu_util": round(cpu_s / wall_s, 4),
        "answers_per_cpu_s": round(d["completed"] / cpu_s, 1) if cpu_s else None,
        "avg_latency_ms": round(d["avg_latency_ms"], 4),
        "client_cpu_util": round(client_cpu_s / wall_s, 4),
        "other_load_server_core": round(other_server_core, 4),
        "other_load_client_core": round(other_client_core, 4),
        "rcodes": d["rcodes"],
    }
    if args.phase == "latency":
        lat = sorted(d["latencies"])
        row["latency_samples"] = len(lat)
        for p in (50, 99, 99.9):
            v = percentile(lat, p, d["lost"])
            row[f"p{p:g}_ms"] = round(v * 1000, 4) if math.isfinite(v) else None
    with args.out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"  {args.server:9s} round {args.round} {args.phase:7s}: {d['qps']:9.0f} qps, "
          f"CPU {cpu_s:6.2f} s ({row['cpu_util']:.0%}), "
          f"{row['answers_per_cpu_s'] or 0:9.0f} answers/CPU-s"
          + (f", p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms" if args.phase == "latency" else "")
          + (f", LOST {d['lost']}" if d["lost"] else "")
          + (f"; other load on the cores {other_server_core:.0%}/{other_client_core:.0%}"
             if max(other_server_core, other_client_core) > OTHER_LOAD_LIMIT else ""))


def disturbed(run):
    return max(run["other_load_server_core"], run["other_load_client_core"]) > OTHER_LOAD_LIMIT


def median_and_spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    med = statistics.median(values)
    return round(med, 4), (round((max(values) - min(values)) / med, 4) if med else None)


def summarize(args):
    runs = [json.loads(line) for line in args.runs.read_text().splitlines() if line]
    servers = list(dict.fromkeys(r["server"] for r in runs))  # in run order

    metrics = {  # name: (phase, key)
        "max_qps": ("max", "qps"),
        "cpu_util_at_max": ("max", "cpu_util"),
        "answers_per_cpu_s": ("max", "answers_per_cpu_s"),
        "p50_ms_at_fixed_rate": ("latency", "p50_ms"),
        "p99_ms_at_fixed_rate": ("latency", "p99_ms"),
        "answers_per_cpu_s_at_fixed_rate": ("latency", "answers_per_cpu_s"),
        "lost_at_fixed_rate": ("latency", "lost"),
        "tcp_qps": ("tcp", "qps"),
        "tcp_answers_per_cpu_s": ("tcp", "answers_per_cpu_s"),
    }
    summary = {"servers": {}, "ratios_to_nsd": {}, "ratios": {}, "warnings": []}
    for s in servers:
        mine = [r for r in runs if r["server"] == s]
        # Runs that other processes disturbed are left out of the medians, unless every run
        # of that phase was disturbed (then they are all the figures there are; warned below).
        clean = [r for r in mine if not disturbed(r)]
        entry = {"rounds": len({r["round"] for r in mine}), "clean_runs": f"{len(clean)}/{len(mine)}"}
        for name, (phase, key) in metrics.items():
            pool = [r for r in clean if r["phase"] == phase] or [r for r in mine if r["phase"] == phase]
            entry[name], entry[name + "_spread"] = median_and_spread([r.get(key) for r in pool])
        summary["servers"][s] = entry
        for r in mine:
            # Every server answers the same queries, so the answer mix must match; a server that
            # REFUSEs or SERVFAILs would otherwise post a meaningless throughput.
            if s == "echo":  # the ceiling sends every query back: NOERROR, no records
                continue
            total = sum(r["rcodes"].values()) or 1
            nx = r["rcodes"].get("NXDOMAIN", 0) / total
            other = 1 - (r["rcodes"].get("NOERROR", 0) + r["rcodes"].get("NXDOMAIN", 0)) / total
            if other > 0.001 or abs(nx - EXPECTED_NXDOMAIN) > 0.01:
                summary["warnings"].append(
                    f"{s} round {r['round']} {r['phase']}: unexpected response codes {r['rcodes']}")
            if disturbed(r):
                summary["warnings"].append(
                    f"{s} round {r['round']} {r['phase']}: other processes took "
                    f"{r['other_load_server_core']:.0%} of the server's core and "
                    f"{r['other_load_client_core']:.0%} of dnsperf's"
                    + ("" if r in clean or not any(c["phase"] == r["phase"] for c in clean)
                       else "; left out of the medians"))
            if r["phase"] == "max" and r["sent"] and r["lost"] / r["sent"] > 0.01:
                summary["warnings"].append(
                    f"{s} round {r['round']}: {r['lost']} of {r['sent']} queries lost at full load")

    if "nsd" in summary["servers"]:
        base = summary["servers"]["nsd"]
        for s in servers:
            if s == "nsd":
                continue
            cur = summary["servers"][s]
            ratio = lambda k: round(cur[k] / base[k], 4) if cur.get(k) and base.get(k) else None
            summary["ratios_to_nsd"][s] = {
                "max_qps": ratio("max_qps"),
                "answers_per_cpu_s": ratio("answers_per_cpu_s"),
                "p50_latency": ratio("p50_ms_at_fixed_rate"),
                "p99_latency": ratio("p99_ms_at_fixed_rate"),
            }

    # ZoneLink against each peer and the ceiling, on the figures the issue asks about: CPU per
    # answer at full load and at the fixed rate, and over TCP.
    if "zonelink" in summary["servers"]:
        mine = summary["servers"]["zonelink"]
        for peer in servers:
            if peer == "zonelink":
                continue
            other = summary["servers"][peer]
            ratio = lambda k: round(mine[k] / other[k], 4) if mine.get(k) and other.get(k) else None
            summary["ratios"][peer] = {
                "answers_per_cpu_s": ratio("answers_per_cpu_s"),
                "answers_per_cpu_s_at_fixed_rate": ratio("answers_per_cpu_s_at_fixed_rate"),
                "tcp_answers_per_cpu_s": ratio("tcp_answers_per_cpu_s"),
            }

    args.dir.mkdir(parents=True, exist_ok=True)
    if args.meta:
        summary["meta"] = json.loads(args.meta.read_text())
    (args.dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (args.dir / "runs.csv").open("w", newline="") as f:
        cols = ["server", "round", "phase", "sent", "answers", "lost", "run_s", "qps", "cpu_s",
                "cpu_util", "answers_per_cpu_s", "avg_latency_ms", "p50_ms", "p99_ms", "p99.9_ms",
                "client_cpu_util", "other_load_server_core", "other_load_client_core", "rcodes"]
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        for r in runs:
            w.writerow({**r, "rcodes": " ".join(f"{k}={v}" for k, v in r["rcodes"].items())})
    with (args.dir / "summary.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["server", "clean_runs", *metrics, "qps_ratio_to_nsd", "answers_per_cpu_s_ratio_to_nsd",
                    "p50_ratio_to_nsd", "p99_ratio_to_nsd"])
        for s, e in summary["servers"].items():
            r = summary["ratios_to_nsd"].get(s, {})
            w.writerow([s, e["clean_runs"], *(e[m] for m in metrics), r.get("max_qps"), r.get("answers_per_cpu_s"),
                        r.get("p50_latency"), r.get("p99_latency")])
    print_table(summary, args.title)


def fmt(v, spec, spread=None):
    if v is None:
        return "-"
    text = format(v, spec)
    return text + (f" ±{spread / 2:.0%}" if spread else "")


def print_table(summary, title):
    print()
    if title:
        print(title)
    print(f"{'':9s} {'--------- unthrottled ----------':>46s} {'------ at the fixed rate ------':>40s}"
          f" {'------- TCP -------':>31s}")
    head = (f"{'server':9s} {'max qps':>15s} {'CPU at max':>11s} {'answers/CPU-s':>18s} "
            f"{'p50 ms':>8s} {'p99 ms':>8s} {'lost':>6s} {'answers/CPU-s':>15s} "
            f"{'qps':>12s} {'answers/CPU-s':>18s} {'clean runs':>11s}")
    print(head)
    print("-" * len(head))
    for s, e in summary["servers"].items():
        print(f"{s:9s} {fmt(e['max_qps'], ',.0f', e['max_qps_spread']):>15s} "
              f"{fmt(e['cpu_util_at_max'], '.0%'):>11s} "
              f"{fmt(e['answers_per_cpu_s'], ',.0f', e['answers_per_cpu_s_spread']):>18s} "
              f"{fmt(e['p50_ms_at_fixed_rate'], '.3f'):>8s} {fmt(e['p99_ms_at_fixed_rate'], '.3f'):>8s} "
              f"{fmt(e['lost_at_fixed_rate'], '.0f'):>6s} "
              f"{fmt(e['answers_per_cpu_s_at_fixed_rate'], ',.0f'):>15s} "
              f"{fmt(e['tcp_qps'], ',.0f'):>12s} "
              f"{fmt(e['tcp_answers_per_cpu_s'], ',.0f', e['tcp_answers_per_cpu_s_spread']):>18s} {e['clean_runs']:>11s}")
    for s, r in summary["ratios_to_nsd"].items():
        f = lambda v: "-" if v is None else f"{v:.2f}"
        print(f"\n{s} / nsd: max qps {f(r['max_qps'])}, answers per CPU-second {f(r['answers_per_cpu_s'])}"
              f" (higher is better); p50 latency {f(r['p50_latency'])}, p99 latency {f(r['p99_latency'])}"
              " (lower is better)")
    f = lambda v: "-" if v is None else f"{v:.2f}"
    for peer, r in summary["ratios"].items():
        name = "the echo ceiling" if peer == "echo" else peer
        print(f"zonelink / {name}: answers per CPU-second {f(r['answers_per_cpu_s'])} at full load, "
              f"{f(r['answers_per_cpu_s_at_fixed_rate'])} at the fixed rate"
              + ("" if peer == "echo" else f", {f(r['tcp_answers_per_cpu_s'])} over TCP"))
    for w in summary["warnings"]:
        print(f"WARNING: {w}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--out", required=True, type=Path)
    rec.add_argument("--server", required=True)
    rec.add_argument("--round", required=True, type=int)
    rec.add_argument("--phase", required=True, choices=["max", "latency", "tcp"])
    rec.add_argument("--dnsperf", required=True, type=Path)
    rec.add_argument("--clk-tck", required=True, type=int, help="clock ticks per second")
    rec.add_argument("--wall", required=True, type=float, nargs=2, help="start and end, epoch seconds")
    rec.add_argument("--server-ticks", required=True, type=int, help="CPU time of the server")
    rec.add_argument("--server-core-ticks", required=True, type=int, help="busy time of the server's core")
    rec.add_argument("--client-core-ticks", required=True, type=int, help="busy time of dnsperf's core")
    rec.add_argument("--client-time", required=True, type=Path, help="`/usr/bin/time -f '%%U %%S'` of dnsperf")
    summ = sub.add_parser("summarize")
    summ.add_argument("--runs", required=True, type=Path)
    summ.add_argument("--dir", required=True, type=Path)
    summ.add_argument("--meta", type=Path, help="JSON object describing the run, copied into summary.json")
    summ.add_argument("--title")
    args = ap.parse_args()
    try:
        record(args) if args.command == "record" else summarize(args)
    except ValueError as e:
        sys.exit(f"report.py: {e}")


if __name__ == "__main__":
    main()
