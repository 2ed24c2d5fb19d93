"""`python -m benchmarks [NAME ...]`: run the speed benchmarks and write bench-results/<name>.json."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

BENCHES = ["bench_codec", "bench_loader", "bench_flow", "bench_build", "bench_cpc", "bench_metrics", "bench_cpfp",
           "bench_codecs"]


def main(names: list[str]) -> None:
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    for name in names or BENCHES:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}: {module.__doc__.strip().splitlines()[0]}")
        result = module.run()
        (out / f"{name}.json").write_text(json.dumps(result, indent=2))
        for k, v in result.items():
            print(f"  {k}: {v}")


if __name__ == "__main__":
    main(sys.argv[1:])
