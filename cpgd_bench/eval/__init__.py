"""Running models over stores and scoring their outputs: the runner, run directories, scoring, protocol sensitivity.

>>> from cpgd_bench.eval import score_predictions                      # doctest: +SKIP
>>> score_predictions(Path("runs/x/predictions.zarr"), Path("data/stores/sample.zarr"), "test").write("out")
"""

from cpgd_bench.eval.scoring import ScoreResult, score_predictions

__all__ = ["ScoreResult", "score_predictions"]
