"""Detection quality on the generated evaluation corpus and the demo corpus
(`evaluation.quality`): prints, overall and per edit kind and grade, pairwise and B-cubed
scores, the distractors kept apart, LSH recall against exact all-pairs verification, the
verification thresholds swept, and with --sweep the passage banding swept (keys and bytes per
article against LSH recall per edit kind).

    .venv/bin/python bench/quality.py [--seed 7] [--scale 1.0] [--sweep] [--out figures.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from evaluation.quality import evaluate
from narratives.params import DEFAULT_PARAMS, DetectionParams


def _override(params: DetectionParams, settings: Sequence[str]) -> DetectionParams:
    changes: dict[str, Any] = {}
    for setting in settings:
        name, _, value = setting.partition("=")
        current = getattr(params, name)
        changes[name] = type(current)(value)
    return replace(params, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0, help="share of sources used (0..1]")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="override a parameter"
    )
    parser.add_argument("--no-exact", action="store_true", help="skip the all-pairs computation")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo corpus")
    parser.add_argument(
        "--sweep", action="store_true", help="also sweep the passage banding (keys, bytes, recall)"
    )
    args = parser.parse_args(argv)
    params = _override(DEFAULT_PARAMS, args.set)
    began = time.perf_counter()
    figures = evaluate(
        args.seed, args.scale, params, not args.no_exact, not args.no_demo, banding=args.sweep
    )
    figures["seconds"] = round(time.perf_counter() - began, 1)
    print(f"\ntotal {figures['seconds']} s")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
