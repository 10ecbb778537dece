"""`python -m bench`: the quick benchmark (about 2.5 minutes), or `--soak` for the RSS soak.

Writes bench/results/latest.md, a dated copy, latest.json and throughput.png (soak: soak.md,
a dated copy and soak.png), and prints the markdown.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

RESULTS = REPO_ROOT / "bench" / "results"


def _write(markdown: str, latest: Path, dated: Path) -> None:
    latest.parent.mkdir(parents=True, exist_ok=True)
    latest.write_text(markdown)
    shutil.copyfile(latest, dated)


def _raw(suite) -> dict:
    scenarios = []
    for s in suite.scenarios:
        load = s.load
        scenarios.append(
            {
                "group": s.group,
                "name": s.name,
                "server": s.server,
                "mode": load.mode,
                "concurrency": load.concurrency,
                "rate": load.rate,
                "requests_per_s": load.requests_per_s,
                "images_per_s": load.images_per_s,
                "p50_ms": load.percentile_ms(50),
                "p95_ms": load.percentile_ms(95),
                "p99_ms": load.percentile_ms(99),
                "statuses": {str(k): v for k, v in load.statuses.items()},
                "mean_batch_rows": s.mean_batch,
                "server_cpu_percent": s.cpu_percent,
                "client_cpu_percent": s.client_cpu_percent,
                "peak_rss_bytes": s.peak_rss,
                "bound": s.bound,
                "bound_requests_per_s": s.bound_rps,
                "fraction_of_bound": s.fraction,
                "client_late_s": load.late_s,
                "service_cpu_us_per_response": s.cpu_us,
                "event_loop_cpu_us_per_response": s.loop_cpu_us,
                "round_ceiling_images_per_s": s.round_ceiling,
            }
        )
    return {
        "started_at": suite.started_at,
        "finished_at": suite.finished_at,
        "duration_s": suite.duration_s,
        "model": suite.model,
        "ceiling": suite.ceiling,
        "memory": suite.memory,
        "load_average": suite.load_average,
        "server_cpus": sorted(suite.server_cpus or []),
        "client_cpus": sorted(suite.client_cpus or []),
        "scenarios": scenarios,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per scenario (default 3)")
    parser.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds per scenario (default 0.5)")
    parser.add_argument("--soak", action="store_true", help="run the RSS soak instead of the quick benchmark")
    parser.add_argument("--soak-seconds", type=float, default=300.0, help="soak length (default 300)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="output folder (default bench/results)")
    args = parser.parse_args(argv)
    day = time.strftime("%Y-%m-%d", time.gmtime())

    if args.soak:
        from bench import soak

        result = soak.run_soak(args.soak_seconds)
        args.results.mkdir(parents=True, exist_ok=True)
        soak.plot(result, args.results / "soak.png")
        text = soak.markdown(result)
        _write(text, args.results / "soak.md", args.results / f"soak-{day}.md")
        print(text)
        return 0 if result.flat else 1

    from bench import report, suite

    results = suite.run_quick(args.duration, args.warmup)
    args.results.mkdir(parents=True, exist_ok=True)
    report.plot(results, args.results / "throughput.png")
    text = report.markdown(results)
    _write(text, args.results / "latest.md", args.results / f"{day}.md")
    (args.results / "latest.json").write_text(json.dumps(_raw(results), indent=1, default=str) + "\n")
    print()
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
