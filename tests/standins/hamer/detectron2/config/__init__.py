"""Stand-in of ``detectron2.config.LazyConfig`` (tests only)."""

from types import SimpleNamespace


class LazyConfig:
    @staticmethod
    def load(path):
        heads = [SimpleNamespace(test_score_thresh=0.05) for _ in range(3)]
        return SimpleNamespace(source=str(path), train=SimpleNamespace(init_checkpoint=""),
                               model=SimpleNamespace(roi_heads=SimpleNamespace(box_predictors=heads)))
