"""Benchmark email rendering: how many customer emails per second one process can render.

Cycles through every template and locale with ``sample_context`` so the figure covers the
whole catalogue, after one warm-up pass that compiles the templates (a worker pays that once).

    .venv/bin/python bench/render_emails.py            # 5,000 emails
    .venv/bin/python bench/render_emails.py -n 20000
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dunning.brand import Brand
from dunning.formatting import LOCALES
from dunning.notify.render import TEMPLATES, render_email, sample_context


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--count", type=int, default=5000, help="emails to render")
    parser.add_argument("--templates-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be positive")

    brand = Brand(
        company_name="Acme Cloud",
        support_email="billing@acme.example",
        logo_url="https://cdn.acme.example/logo.png",
    )
    combos = [(t, loc, sample_context(t)) for t in TEMPLATES for loc in LOCALES]

    started = time.perf_counter()
    for template, locale, ctx in combos:  # warm-up: compile every template once
        render_email(template, locale, ctx, brand=brand, templates_dir=args.templates_dir)
    warmup = time.perf_counter() - started

    timings: list[float] = []
    total_bytes = 0
    cycle = itertools.cycle(combos)
    started = time.perf_counter()
    for _ in range(args.count):
        template, locale, ctx = next(cycle)
        t0 = time.perf_counter()
        email = render_email(template, locale, ctx, brand=brand, templates_dir=args.templates_dir)
        timings.append(time.perf_counter() - t0)
        total_bytes += len(email.html) + len(email.text) + len(email.subject)
    elapsed = time.perf_counter() - started

    timings.sort()
    p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
    print(f"templates x locales : {len(TEMPLATES)} x {len(LOCALES)} = {len(combos)}")
    print(f"warm-up (compile)   : {warmup * 1000:.1f} ms")
    print(f"emails rendered     : {args.count:,} in {elapsed:.3f} s")
    print(f"throughput          : {args.count / elapsed:,.0f} emails/s")
    print(f"mean per email      : {statistics.fmean(timings) * 1000:.3f} ms")
    print(f"median / p95        : {timings[len(timings) // 2] * 1000:.3f} / {p95 * 1000:.3f} ms")
    print(f"mean size           : {total_bytes / args.count / 1024:.1f} KiB (subject+text+html)")


if __name__ == "__main__":
    main()
