"""Every identifier a page shows has plain words (insulin_core/labels.py)."""
from __future__ import annotations

from insulin_core.data.aim94_lines import REASONS
from insulin_core.models.baselines import BASELINES
from insulin_core.prep.features import NOW_FEATURES, SEQ_FEATURES
from insulin_core.labels import FEATURE_LABELS, METRIC_LABELS, PREDICTOR_LABELS, REASON_LABELS, label
from insulin_core.evaluation.metrics import METRIC_COLUMNS


def test_every_feature_metric_baseline_and_reason_has_plain_words():
    assert set(SEQ_FEATURES) | set(NOW_FEATURES) <= set(FEATURE_LABELS)
    assert set(METRIC_COLUMNS) <= set(METRIC_LABELS)
    assert set(BASELINES) | {"model"} <= set(PREDICTOR_LABELS)
    assert set(REASONS) <= set(REASON_LABELS)
    for name in [*FEATURE_LABELS, *METRIC_COLUMNS, *BASELINES]:
        words = label(name)
        assert words != name or name in ("glucose", "exercise"), name  # the odd identifier that is already a word
        assert "_" not in words, (name, words)


def test_meal_and_exercise_levels_read_as_english():
    import numpy as np
    import pandas as pd

    from insulin_core.data.codes import LEVELS
    from insulin_core.whatif.explain import _NOW, _describe_now
    from insulin_core.prep.features import NOW_FEATURES

    decision = pd.Series({"day_part": "morning", "timestamp": pd.Timestamp("1991-05-01 08:00")})
    said = {}
    for level, value in LEVELS.items():
        now = np.zeros(len(NOW_FEATURES))
        now[_NOW["meal"]] = now[_NOW["exercise"]] = value
        said[level] = (_describe_now("meal", now, decision), _describe_now("exercise", now, decision))
    assert said["less"] == ("a smaller meal than usual now", "less exercise than usual now")
    assert said["more"] == ("a larger meal than usual now", "more exercise than usual now")
    assert said["none"] == ("no meal now", "no exercise now")
    for meal, exercise in said.values():
        assert "a less" not in meal and "a more" not in meal and "typical exercise" not in exercise


def test_level_names_decode_the_recorded_values_and_show_others_as_numbers():
    # codes.level_name: the one decoder of meal and exercise values (What-if inputs, explanations,
    # the What-if page's window); a value off the scale shows as a number, never as a level
    from insulin_core.data.codes import level_name

    assert [level_name(v) for v in (0.0, 1.0, 2.0, 3.0)] == ["none", "less", "typical", "more"]
    assert [level_name(v) for v in (-0.5, 0.49, 2.6, 3.49)] == ["none", "none", "more", "more"]
    assert [level_name(v) for v in (-0.6, 3.5, 7.0, float("nan"))] == ["-0.6", "3.5", "7", "nan"]


def test_predictions_csv_columns_are_described():
    from insulin_core.models.baselines import BASELINES
    from insulin_core.labels import describe_columns

    columns = ["patient_id", "timestamp", "split", "actual", "predicted", *BASELINES, "model_low", "ridge_high"]
    described = describe_columns(columns)
    assert list(described["column"]) == columns
    assert described["description"].str.len().min() > 10 and not described["description"].str.contains("_").any()
    assert described["description"].is_unique


def test_split_parts_and_stop_reasons_have_words():
    from insulin_core.labels import PART_LABELS, STOP_LABELS
    from insulin_core.models.train import STOP_REASONS

    assert PART_LABELS["val"] == "validation part" and set(PART_LABELS) == {"train", "val", "test", "all"}
    assert set(STOP_REASONS) <= set(STOP_LABELS) and not any("_" in w for w in STOP_LABELS.values())


def test_every_split_and_target_the_train_form_offers_has_words():
    from insulin_core.prep.splits import SPLITS
    from insulin_core.prep.windows import TARGETS

    for name in (*SPLITS, *TARGETS):
        assert label(name) != name and "_" not in label(name), name


def test_every_column_of_the_tune_pages_trials_table_has_words():
    import optuna

    from insulin_core.labels import TRIAL_LABELS
    from insulin_core.jobs.tune import trials_table

    columns = list(trials_table(optuna.create_study()).columns)
    assert columns and set(columns) <= set(TRIAL_LABELS)
    assert not any("_" in TRIAL_LABELS[c] for c in columns)  # no identifier reaches the page
