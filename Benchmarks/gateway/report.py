#!/usr/bin/env python3
"""Turn wrk and iperf3 outputs into the gateway benchmark's figures.

  report.py record --out RUNS.jsonl --path P --round N --phase iperf|close|keepalive
                   --output FILE --exit-status RC --clk-tck HZ --wall T0 T1
                   --proxy-ticks T --backend-ticks T --proxy-core-ticks T --client-core-ticks T
                   --proxy-softirqd-ticks T --client-softirqd-ticks T [--proxy-kworker-ticks T]
                   --client-time FILE
      parses one run (`iperf3 -J` JSON, or wrk's output with wrk-report.lua's JSON line), adds
      the CPU figures and appends one JSON line to RUNS.jsonl.
  report.py summarize --runs RUNS.jsonl --dir RESULTS_DIR [--meta META.json] [--title TEXT]
      writes runs.csv, summary.csv and summary.json to RESULTS_DIR and prints the table.
  report.py syscalls-record --out SYSCALLS.jsonl --path P --round N --phase close|keepalive
                            --strace FILE --output FILE
      (syscall mode) parses `strace -c` output and wrk's and appends the calls per syscall
      and the requests wrk completed as one JSON line.
  report.py syscalls-summarize --runs SYSCALLS.jsonl --out FILE
      writes and prints syscalls per connection (close) and per request (keep-alive), by path.
  report.py perf-record --out PERF.jsonl --path P --round N --phase close|keepalive
                        --comms FILE --proxy-comms A,B,... --output FILE
      (perf mode) parses `perf report --sort cpu,comm -n` and wrk's output; appends the
      samples of the traffic's tasks (the proxy's threads, kworkers, ksoftirqd, wrk, nginx) per
      request as one JSON line.
  report.py perf-summarize --runs PERF.jsonl --out FILE
      writes and prints the CPU per connection and per request that each path causes on both
      cores, and its ratio to HAProxy's.

Figures per path are the median over the rounds that succeeded and whose cores other processes
left alone (all successful rounds if none was); the spread is (max - min) / median.
"""

import argparse
import csv
import json
import re
import statistics
import sys
from pathlib import Path

# Share of a core that other processes may take before a run counts as disturbed.
OTHER_LOAD_LIMIT = 0.10

# ZoneLink's bar: its CPU per connection and per request within this factor of HAProxy's.
BAR = 1.5

PHASES = ("iperf", "close", "keepalive")


def parse_wrk(text):
    m = re.search(r"^WRK_JSON (\{.*\})$", text, re.M)
    if not m:
        raise ValueError("wrk printed no summary (WRK_JSON line): " + text.strip()[-300:])
    d = json.loads(m.group(1))
    errors = {k: v for k, v in d["errors"].items() if v}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non2xx:
        errors["non2xx"] = int(non2xx.group(1))
    return {
        "requests": d["requests"], "run_s": d["duration_us"] / 1e6, "bytes": d["bytes"],
        "errors": errors, "latency_us": d["latency_us"],
    }


def parse_iperf(text):
    try:
        d = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError("iperf3 printed no JSON: " + text.strip()[-300:])
    if d.get("error"):
        raise ValueError(f"iperf3: {d['error']}")
    received = d["end"]["sum_received"]
    sent = d["end"].get("sum_sent", {})
    return {
        "bytes": received["bytes"], "run_s": received["seconds"],
        "gbit_s": received["bits_per_second"] / 1e9, "retransmits": sent.get("retransmits"),
    }


def record(args):
    text = args.output.read_text(errors="replace") if args.output.exists() else ""
    wall_s = args.wall[1] - args.wall[0]
    hz = args.clk_tck
    proxy_cpu_s = args.proxy_ticks / hz
    backend_cpu_s = args.backend_ticks / hz
    try:
        client_cpu_s = sum(float(x) for x in args.client_time.read_text().split()[-2:])
    except (OSError, ValueError):
        client_cpu_s = 0.0
    # What the measured processes (and the kernel's softirq thread, which carries their
    # packets) did not use of their own cores, other processes did.
    other_proxy_core = max(0.0, (args.proxy_core_ticks - args.proxy_ticks - args.proxy_softirqd_ticks
                                 - args.proxy_kworker_ticks) / hz) / wall_s
    # The whole proxy core's busy time: the proxy, the softirq work it causes, and the kworkers
    # that send a sockmap relay's bytes (none of which is the process's own CPU time).
    core_cpu_s = args.proxy_core_ticks / hz
    other_client_core = max(0.0, (args.client_core_ticks - args.backend_ticks - args.client_softirqd_ticks) / hz
                            - client_cpu_s) / wall_s
    row = {
        "path": args.path, "round": args.round, "phase": args.phase, "ok": True, "error": None,
        "wall_s": round(wall_s, 3),
        "proxy_cpu_s": proxy_cpu_s if args.path != "direct" else None,
        "proxy_cpu_util": round(proxy_cpu_s / wall_s, 4) if args.path != "direct" else None,
        "proxy_softirqd_util": round(args.proxy_softirqd_ticks / hz / wall_s, 4),
        "proxy_kworker_util": round(args.proxy_kworker_ticks / hz / wall_s, 4),
        "core_cpu_util": round(core_cpu_s / wall_s, 4),
        "backend_cpu_util": round(backend_cpu_s / wall_s, 4),
        "client_cpu_util": round(client_cpu_s / wall_s, 4),
        "other_load_proxy_core": round(other_proxy_core, 4),
        "other_load_client_core": round(other_client_core, 4),
    }
    try:
        if args.phase == "iperf":
            d = parse_iperf(text)
            gb = d["bytes"] / 1e9
            row.update({
                "bytes": d["bytes"], "run_s": round(d["run_s"], 3), "gbit_s": round(d["gbit_s"], 3),
                "retransmits": d["retransmits"],
                "proxy_cpu_ms_per_gb": round(proxy_cpu_s * 1e3 / gb, 2) if gb and args.path != "direct" else None,
                "core_cpu_ms_per_gb": round(core_cpu_s * 1e3 / gb, 2) if gb and args.path != "direct" else None,
            })
        else:
            d = parse_wrk(text)
            row.update({
                "requests": d["requests"], "run_s": round(d["run_s"], 3),
                "rps": round(d["requests"] / d["run_s"], 1) if d["run_s"] else None,
                "errors": d["errors"],
                "p50_ms": d["latency_us"]["p50"] / 1e3, "p99_ms": d["latency_us"]["p99"] / 1e3,
                "proxy_cpu_us_per_request": (round(proxy_cpu_s * 1e6 / d["requests"], 2)
                                             if d["requests"] and args.path != "direct" else None),
                "backend_cpu_us_per_request": round(backend_cpu_s * 1e6 / d["requests"], 2) if d["requests"] else None,
                "core_cpu_us_per_request": (round(core_cpu_s * 1e6 / d["requests"], 2)
                                            if d["requests"] and args.path != "direct" else None),
            })
            if d["errors"]:
                row["error"] = "wrk errors " + ", ".join(f"{k} {v}" for k, v in d["errors"].items())
            if not d["requests"]:
                row["ok"] = False
    except (ValueError, KeyError) as e:
        row.update({"ok": False, "error": str(e)})
    if args.exit_status and row["ok"]:
        row["error"] = ((row["error"] + "; ") if row["error"] else "") + f"exit status {args.exit_status}"
        if args.exit_status == 124:  # killed by `timeout`: the figures are incomplete
            row["ok"] = False
    with args.out.open("a") as f:
        f.write(json.dumps(row) + "\n")

    cpu = (f", proxy CPU {proxy_cpu_s:6.2f} s ({row['proxy_cpu_util']:.0%})" if args.path != "direct" else "")
    if not row["ok"]:
        figures = "FAILED: " + row["error"]
    elif args.phase == "iperf":
        figures = f"{row['gbit_s']:7.2f} Gbit/s{cpu}" + (
            f", {row['proxy_cpu_ms_per_gb']:.0f} CPU-ms/GB (whole core {row['core_cpu_ms_per_gb']:.0f})"
            if row.get("proxy_cpu_ms_per_gb") else "")
    else:
        unit = "conn" if args.phase == "close" else "req"
        figures = f"{row['rps']:9.0f} req/s{cpu}" + (
            f", {row['proxy_cpu_us_per_request']:.1f} CPU-µs/{unit}" if row.get("proxy_cpu_us_per_request") else "")
        if row.get("core_cpu_us_per_request"):
            figures += f" (whole core {row['core_cpu_us_per_request']:.1f})"
        figures += f", p99 {row['p99_ms']:.2f} ms"
    print(f"  {args.path:9s} round {args.round} {args.phase:9s}: {figures}"
          + (f"; {row['error']}" if row["ok"] and row["error"] else "")
          + (f"; other load on the proxy's/client's core {other_proxy_core:.0%}/{other_client_core:.0%}"
             if disturbed(row) else ""))


def disturbed(run):
    """Other processes took a share of a measured core. The direct path uses only the client's
    core, so what runs on the proxy's core then does not disturb it."""
    cores = ["other_load_client_core"] + ([] if run["path"] == "direct" else ["other_load_proxy_core"])
    return max(run[c] for c in cores) > OTHER_LOAD_LIMIT


def median_and_spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    med = statistics.median(values)
    return med, ((max(values) - min(values)) / med if med else None)


METRICS = {  # name: (phase, key)
    "iperf_gbit_s": ("iperf", "gbit_s"),
    "iperf_proxy_cpu_util": ("iperf", "proxy_cpu_util"),
    "proxy_cpu_ms_per_gb": ("iperf", "proxy_cpu_ms_per_gb"),
    "close_rps": ("close", "rps"),
    "close_proxy_cpu_util": ("close", "proxy_cpu_util"),
    "proxy_cpu_us_per_connection": ("close", "proxy_cpu_us_per_request"),
    "close_p99_ms": ("close", "p99_ms"),
    "keepalive_rps": ("keepalive", "rps"),
    "keepalive_proxy_cpu_util": ("keepalive", "proxy_cpu_util"),
    "proxy_cpu_us_per_request": ("keepalive", "proxy_cpu_us_per_request"),
    "keepalive_p99_ms": ("keepalive", "p99_ms"),
    "backend_cpu_us_per_connection": ("close", "backend_cpu_us_per_request"),
    "backend_cpu_us_per_request": ("keepalive", "backend_cpu_us_per_request"),
    "core_cpu_us_per_connection": ("close", "core_cpu_us_per_request"),
    "core_cpu_us_per_request": ("keepalive", "core_cpu_us_per_request"),
    "core_cpu_ms_per_gb": ("iperf", "core_cpu_ms_per_gb"),
}

RATIOS = {  # name in ratios: metric; CPU: lower is better, throughput: higher is better
    "cpu_per_connection": "proxy_cpu_us_per_connection",
    "cpu_per_request": "proxy_cpu_us_per_request",
    "cpu_per_gb": "proxy_cpu_ms_per_gb",
    "iperf_throughput": "iperf_gbit_s",
    "close_requests_per_s": "close_rps",
    "keepalive_requests_per_s": "keepalive_rps",
    "core_per_connection": "core_cpu_us_per_connection",
    "core_per_request": "core_cpu_us_per_request",
    "core_per_gb": "core_cpu_ms_per_gb",
}


def summarize(args):
    runs = [json.loads(line) for line in args.runs.read_text().splitlines() if line]
    paths = list(dict.fromkeys(r["path"] for r in runs))  # in run order
    summary = {"paths": {}, "ratios_to_haproxy": {}, "ratios_to_direct": {}, "warnings": []}
    for p in paths:
        mine = [r for r in runs if r["path"] == p]
        good = [r for r in mine if r["ok"]]
        # Runs that other processes disturbed are left out of the medians, unless every run
        # of that phase was disturbed (then they are all the figures there are; warned below).
        clean = [r for r in good if not disturbed(r)]
        entry = {"rounds": len({r["round"] for r in mine}), "clean_runs": f"{len(clean)}/{len(mine)}",
                 "failed_runs": len(mine) - len(good),
                 "wrk_errors": sum(sum(r.get("errors", {}).values()) for r in mine)}
        for name, (phase, key) in METRICS.items():
            pool = [r for r in clean if r["phase"] == phase] or [r for r in good if r["phase"] == phase]
            entry[name], entry[name + "_spread"] = median_and_spread([r.get(key) for r in pool])
        summary["paths"][p] = entry
        for r in mine:
            where = f"{p} round {r['round']} {r['phase']}"
            if not r["ok"]:
                summary["warnings"].append(f"{where}: FAILED: {r['error']}")
            elif r["error"]:
                summary["warnings"].append(f"{where}: {r['error']}")
            if r["ok"] and disturbed(r):
                summary["warnings"].append(
                    f"{where}: other processes took {r['other_load_proxy_core']:.0%} of the proxy's core and "
                    f"{r['other_load_client_core']:.0%} of the client's"
                    + ("" if r in clean or not any(c["phase"] == r["phase"] for c in clean)
                       else "; left out of the medians"))

    def ratios(base_name, cur_name):
        base, cur = summary["paths"][base_name], summary["paths"][cur_name]
        return {name: (round(cur[m] / base[m], 3) if cur.get(m) and base.get(m) else None)
                for name, m in RATIOS.items()}

    if "haproxy" in summary["paths"]:
        for p in paths:
            if p not in ("haproxy", "direct"):
                summary["ratios_to_haproxy"][p] = ratios("haproxy", p)
                r = summary["ratios_to_haproxy"][p]
                checks = [r["cpu_per_connection"], r["cpu_per_request"]]
                r["within_bar"] = None if None in checks else all(c <= BAR for c in checks)
    if "direct" in summary["paths"]:
        for p in paths:
            if p != "direct":
                summary["ratios_to_direct"][p] = {k: v for k, v in ratios("direct", p).items()
                                                  if not k.startswith("cpu_")}

    # What the attribution log costs: ZoneLink with it over ZoneLink without it.
    if "zonelink" in summary["paths"] and "zonelink-noattr" in summary["paths"]:
        summary["attribution_cost"] = ratios("zonelink-noattr", "zonelink")

    args.dir.mkdir(parents=True, exist_ok=True)
    if args.meta:
        summary["meta"] = json.loads(args.meta.read_text())
    (args.dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (args.dir / "runs.csv").open("w", newline="") as f:
        cols = ["path", "round", "phase", "ok", "error", "wall_s", "run_s", "gbit_s", "bytes", "retransmits",
                "requests", "rps", "p50_ms", "p99_ms", "proxy_cpu_s", "proxy_cpu_util", "proxy_cpu_ms_per_gb",
                "proxy_cpu_us_per_request", "backend_cpu_util", "backend_cpu_us_per_request", "client_cpu_util",
                "proxy_softirqd_util", "proxy_kworker_util", "core_cpu_util", "core_cpu_us_per_request",
                "core_cpu_ms_per_gb", "other_load_proxy_core", "other_load_client_core", "errors"]
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        for r in runs:
            w.writerow({**r, "errors": " ".join(f"{k}={v}" for k, v in r.get("errors", {}).items())})
    with (args.dir / "summary.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "clean_runs", "failed_runs", "wrk_errors", *METRICS,
                    *(f"{k}_ratio_to_haproxy" for k in RATIOS)])
        for p, e in summary["paths"].items():
            r = summary["ratios_to_haproxy"].get(p, {})
            w.writerow([p, e["clean_runs"], e["failed_runs"], e["wrk_errors"], *(e[m] for m in METRICS),
                        *(r.get(k) for k in RATIOS)])
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
    groups = f"{'':9s} {'----------- iperf3 -----------':>32s} {'------- wrk, Connection: close -------':>41s} " \
             f"{'--------- wrk, keep-alive ----------':>40s}"
    head = (f"{'path':9s} {'Gbit/s':>11s} {'proxy CPU':>9s} {'CPU-ms/GB':>10s} "
            f"{'req/s':>13s} {'proxy CPU':>9s} {'CPU-µs/conn':>17s} "
            f"{'req/s':>13s} {'proxy CPU':>9s} {'CPU-µs/req':>16s} {'errors':>7s} {'clean runs':>11s}")
    print(groups)
    print(head)
    print("-" * len(head))
    for p, e in summary["paths"].items():
        sp = lambda k: e.get(k + "_spread")
        errors = e["wrk_errors"] + e["failed_runs"]
        print(f"{p:9s} {fmt(e['iperf_gbit_s'], '.2f', sp('iperf_gbit_s')):>11s} "
              f"{fmt(e['iperf_proxy_cpu_util'], '.0%'):>9s} "
              f"{fmt(e['proxy_cpu_ms_per_gb'], '.0f'):>10s} "
              f"{fmt(e['close_rps'], ',.0f', sp('close_rps')):>13s} {fmt(e['close_proxy_cpu_util'], '.0%'):>9s} "
              f"{fmt(e['proxy_cpu_us_per_connection'], '.1f', sp('proxy_cpu_us_per_connection')):>17s} "
              f"{fmt(e['keepalive_rps'], ',.0f', sp('keepalive_rps')):>13s} "
              f"{fmt(e['keepalive_proxy_cpu_util'], '.0%'):>9s} "
              f"{fmt(e['proxy_cpu_us_per_request'], '.1f', sp('proxy_cpu_us_per_request')):>16s} "
              f"{errors:>7d} {e['clean_runs']:>11s}")
    f = lambda v: "-" if v is None else f"{v:.2f}"
    for p, r in summary["ratios_to_haproxy"].items():
        verdict = {True: "within", False: "NOT within", None: "cannot tell whether within"}[r["within_bar"]]
        print(f"\n{p} / haproxy: CPU per connection {f(r['cpu_per_connection'])}, CPU per request "
              f"{f(r['cpu_per_request'])}, CPU per GB {f(r['cpu_per_gb'])} (lower is better; "
              f"{verdict} the {BAR}x bar on connection and request)")
        print(f"{' ' * len(p)}             whole proxy core (process, its softirq work, kworkers): per connection "
              f"{f(r['core_per_connection'])}, per request {f(r['core_per_request'])}, per GB {f(r['core_per_gb'])}")
        print(f"{' ' * len(p)}             throughput: iperf3 {f(r['iperf_throughput'])}, close req/s "
              f"{f(r['close_requests_per_s'])}, keep-alive req/s {f(r['keepalive_requests_per_s'])} (higher is better)")
    for p, r in summary["ratios_to_direct"].items():
        print(f"{p} / direct: iperf3 {f(r['iperf_throughput'])}, close req/s {f(r['close_requests_per_s'])}, "
              f"keep-alive req/s {f(r['keepalive_requests_per_s'])}")
    if "attribution_cost" in summary:
        r = summary["attribution_cost"]
        print(f"\nattribution log: zonelink / zonelink-noattr: CPU per connection {f(r['cpu_per_connection'])}, "
              f"per request {f(r['cpu_per_request'])} (1.05 would be 5 % more)")
    for w in summary["warnings"]:
        print(f"WARNING: {w}")


def parse_strace_counts(text):
    """`strace -c`'s table: {syscall: (calls, errors)}."""
    counts = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) not in (5, 6) or not fields[3].isdigit() or fields[-1] == "total":
            continue
        try:
            float(fields[0])
        except ValueError:
            continue
        counts[fields[-1]] = (int(fields[3]), int(fields[4]) if len(fields) == 6 else 0)
    if not counts:
        raise ValueError("strace printed no counts: " + text.strip()[-300:])
    return counts


def syscalls_record(args):
    wrk = parse_wrk(args.output.read_text())
    counts = parse_strace_counts(args.strace.read_text())
    line = {"path": args.path, "round": args.round, "phase": args.phase, "requests": wrk["requests"],
            "errors": wrk["errors"], "calls": {k: c for k, (c, _) in counts.items()},
            "failed": {k: e for k, (_, e) in counts.items() if e}}
    with args.out.open("a") as f:
        f.write(json.dumps(line) + "\n")


def syscalls_summarize(args):
    runs = [json.loads(l) for l in args.runs.read_text().splitlines() if l.strip()]
    paths = list(dict.fromkeys(r["path"] for r in runs))
    lines = []
    for phase, unit in (("close", "connection"), ("keepalive", "request")):
        per = {}      # path -> {syscall: calls per unit, summed over rounds / requests over rounds}
        for path in paths:
            rs = [r for r in runs if r["path"] == path and r["phase"] == phase and r["requests"] > 0]
            if not rs:
                continue
            requests = sum(r["requests"] for r in rs)
            names = {n for r in rs for n in r["calls"]}
            per[path] = {n: sum(r["calls"].get(n, 0) for r in rs) / requests for n in names}
            per[path]["(failed)"] = sum(sum(r["failed"].values()) for r in rs) / requests
            per[path]["(requests)"] = requests
        if not per:
            continue
        cols = list(per)
        names = sorted({n for p in per.values() for n in p if not n.startswith("(")},
                       key=lambda n: -max(per[c].get(n, 0) for c in cols))
        lines.append(f"syscalls per {unit} ({'Connection: close' if phase == 'close' else 'keep-alive'}), strace -f -c")
        lines.append(f"{'syscall':<18}" + "".join(f"{c:>16}" for c in cols))
        for n in names:
            lines.append(f"{n:<18}" + "".join(f"{per[c].get(n, 0):>16.2f}" for c in cols))
        lines.append(f"{'total':<18}" + "".join(
            f"{sum(v for k, v in per[c].items() if not k.startswith('(')):>16.2f}" for c in cols))
        lines.append(f"{'of which failed':<18}" + "".join(f"{per[c]['(failed)']:>16.2f}" for c in cols))
        lines.append(f"{'requests (wrk)':<18}" + "".join(f"{per[c]['(requests)']:>16d}" for c in cols))
        lines.append("")
    text = "\n".join(lines)
    args.out.write_text(text + "\n")
    print(text)


# perf mode: samples of cpu-clock at 999 Hz, so one sample is 1/999 s of a core.
PERF_SAMPLE_US = 1e6 / 999
PERCPU_KWORKER = re.compile(r"^kworker/\d+:")
SOFTIRQD = re.compile(r"^ksoftirqd/\d+")
CLIENT_AND_BACKENDS = ("wrk", "nginx")


def perf_record(args):
    wrk = parse_wrk(args.output.read_text())
    proxy_comms = {c for c in args.proxy_comms.split(",") if c}
    parts = {"proxy": 0, "kworkers": 0, "ksoftirqd": 0, "client_and_backends": 0, "other_processes": 0}
    for line in args.comms.read_text().splitlines():
        fields = line.split()
        if line.startswith("#") or len(fields) < 4 or not fields[0].endswith("%") or not fields[1].isdigit():
            continue
        samples, comm = int(fields[1]), " ".join(fields[3:])
        if comm in proxy_comms:
            part = "proxy"
        elif PERCPU_KWORKER.match(comm):
            part = "kworkers"
        elif SOFTIRQD.match(comm):
            part = "ksoftirqd"
        elif comm in CLIENT_AND_BACKENDS:
            part = "client_and_backends"
        else:
            part = "other_processes"
        parts[part] += samples
    line = {"path": args.path, "round": args.round, "phase": args.phase, "requests": wrk["requests"],
            "errors": wrk["errors"], "samples": parts}
    with args.out.open("a") as f:
        f.write(json.dumps(line) + "\n")
    if wrk["requests"]:
        per = {k: v * PERF_SAMPLE_US / wrk["requests"] for k, v in parts.items()}
        print(f"  {args.path:9s} round {args.round} {args.phase:9s}: {wrk['requests']} requests; CPU-µs per request: "
              + ", ".join(f"{k} {v:.1f}" for k, v in per.items()))


def perf_summarize(args):
    runs = [json.loads(l) for l in args.runs.read_text().splitlines() if l.strip()]
    paths = list(dict.fromkeys(r["path"] for r in runs))
    traffic = ("proxy", "kworkers", "ksoftirqd", "client_and_backends")
    table = {}   # (path, phase) -> {part: median µs per request}
    for path in paths:
        for phase in ("close", "keepalive"):
            rs = [r for r in runs if r["path"] == path and r["phase"] == phase and r["requests"] > 0]
            if not rs:
                continue
            per = {k: statistics.median(r["samples"][k] * PERF_SAMPLE_US / r["requests"] for r in rs)
                   for k in (*traffic, "other_processes")}
            per["total"] = statistics.median(sum(r["samples"][k] for k in traffic) * PERF_SAMPLE_US / r["requests"]
                                             for r in rs)
            per["rounds"] = len(rs)
            per["errors"] = sum(sum(r["errors"].values()) for r in rs)
            table[(path, phase)] = per
    lines = ["CPU-µs per connection (Connection: close) and per request (keep-alive), both cores, perf -a;",
             "median of the rounds. 'caused' is the path's total minus the direct path's: the proxy and",
             "everything the kernel does for it, on either core.", ""]
    head = f"{'path':10s} {'phase':9s} {'proxy':>8s} {'kworkers':>9s} {'ksoftirqd':>9s} {'wrk+nginx':>9s} " \
           f"{'total':>8s} {'caused':>8s} {'errors':>6s} {'rounds':>6s}"
    lines += [head, "-" * len(head)]
    for (path, phase), per in table.items():
        direct = table.get(("direct", phase))
        per["caused"] = per["total"] - direct["total"] if direct and path != "direct" else None
        lines.append(f"{path:10s} {phase:9s} {per['proxy']:8.1f} {per['kworkers']:9.1f} {per['ksoftirqd']:9.1f} "
                     f"{per['client_and_backends']:9.1f} {per['total']:8.1f} "
                     f"{fmt(per['caused'], '.1f'):>8s} {per['errors']:6d} {per['rounds']:6d}")
    lines.append("")
    for path in paths:
        if path in ("haproxy", "direct"):
            continue
        ratios = []
        for phase, unit in (("close", "connection"), ("keepalive", "request")):
            mine, base = table.get((path, phase)), table.get(("haproxy", phase))
            if not mine or not base:
                continue
            own = (mine["proxy"] + mine["kworkers"] + mine["ksoftirqd"]) / (base["proxy"] + base["kworkers"] + base["ksoftirqd"])
            text = f"per {unit}: proxy, kworkers and ksoftirqd {own:.2f}"
            if mine.get("caused") and base.get("caused"):
                text += f", caused on both cores {mine['caused'] / base['caused']:.2f}"
            ratios.append(text)
        if ratios:
            lines.append(f"{path} / haproxy: " + "; ".join(ratios))
    text = "\n".join(lines)
    args.out.write_text(text + "\n")
    print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--out", required=True, type=Path)
    rec.add_argument("--path", required=True)
    rec.add_argument("--round", required=True, type=int)
    rec.add_argument("--phase", required=True, choices=PHASES)
    rec.add_argument("--output", required=True, type=Path, help="iperf3 -J output, or wrk's output")
    rec.add_argument("--exit-status", required=True, type=int)
    rec.add_argument("--clk-tck", required=True, type=int, help="clock ticks per second")
    rec.add_argument("--wall", required=True, type=float, nargs=2, help="start and end, epoch seconds")
    rec.add_argument("--proxy-ticks", required=True, type=int, help="CPU time of the proxy")
    rec.add_argument("--backend-ticks", required=True, type=int, help="CPU time of nginx and iperf3 -s")
    rec.add_argument("--proxy-core-ticks", required=True, type=int, help="busy time of the proxy's core")
    rec.add_argument("--client-core-ticks", required=True, type=int, help="busy time of the client's core")
    rec.add_argument("--proxy-softirqd-ticks", required=True, type=int, help="ksoftirqd of the proxy's core")
    rec.add_argument("--client-softirqd-ticks", required=True, type=int, help="ksoftirqd of the client's core")
    rec.add_argument("--proxy-kworker-ticks", type=int, default=0, help="the proxy core's per-CPU kworkers")
    rec.add_argument("--client-time", required=True, type=Path, help="`/usr/bin/time -f '%%U %%S'` of the client")
    summ = sub.add_parser("summarize")
    summ.add_argument("--runs", required=True, type=Path)
    summ.add_argument("--dir", required=True, type=Path)
    summ.add_argument("--meta", type=Path, help="JSON object describing the run, copied into summary.json")
    summ.add_argument("--title")
    srec = sub.add_parser("syscalls-record")
    srec.add_argument("--out", required=True, type=Path)
    srec.add_argument("--path", required=True)
    srec.add_argument("--round", required=True, type=int)
    srec.add_argument("--phase", required=True, choices=("close", "keepalive"))
    srec.add_argument("--strace", required=True, type=Path, help="strace -c output")
    srec.add_argument("--output", required=True, type=Path, help="wrk's output")
    ssum = sub.add_parser("syscalls-summarize")
    ssum.add_argument("--runs", required=True, type=Path)
    ssum.add_argument("--out", required=True, type=Path)
    prec = sub.add_parser("perf-record")
    prec.add_argument("--out", required=True, type=Path)
    prec.add_argument("--path", required=True)
    prec.add_argument("--round", required=True, type=int)
    prec.add_argument("--phase", required=True, choices=("close", "keepalive"))
    prec.add_argument("--comms", required=True, type=Path, help="perf report --sort cpu,comm -n output")
    prec.add_argument("--proxy-comms", required=True, help="the proxy's thread names, comma-separated")
    prec.add_argument("--output", required=True, type=Path, help="wrk's output")
    psum = sub.add_parser("perf-summarize")
    psum.add_argument("--runs", required=True, type=Path)
    psum.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    commands = {"record": record, "summarize": summarize, "syscalls-record": syscalls_record,
                "syscalls-summarize": syscalls_summarize, "perf-record": perf_record,
                "perf-summarize": perf_summarize}
    try:
        commands[args.command](args)
    except ValueError as e:
        sys.exit(f"report.py: {e}")


if __name__ == "__main__":
    main()
