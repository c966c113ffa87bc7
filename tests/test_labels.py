"""Every identifier a page shows has plain words (insulin_core/labels.py)."""
from __future__ import annotations

from insulin_core.aim94 import REASONS
from insulin_core.baselines import BASELINES
from insulin_core.features import NOW_FEATURES, SEQ_FEATURES
from insulin_core.labels import FEATURE_LABELS, METRIC_LABELS, PREDICTOR_LABELS, REASON_LABELS, label
from insulin_core.metrics import METRIC_COLUMNS


def test_every_feature_metric_baseline_and_reason_has_plain_words():
    assert set(SEQ_FEATURES) | set(NOW_FEATURES) <= set(FEATURE_LABELS)
    assert set(METRIC_COLUMNS) <= set(METRIC_LABELS)
    assert set(BASELINES) | {"model"} <= set(PREDICTOR_LABELS)
    assert set(REASONS) <= set(REASON_LABELS)
    for name in [*FEATURE_LABELS, *METRIC_COLUMNS, *BASELINES]:
        words = label(name)
        assert words != name or name in ("glucose", "exercise"), name  # the odd identifier that is already a word
        assert "_" not in words, (name, words)
