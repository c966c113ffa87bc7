"""Safety flags: inputs outside the training range, non-monotone dose-response (and how often
curves are), doses far above the patient's history; each alone and through a prediction."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from insulin_core.prep.features import NOW_FEATURES, SEQ_FEATURES
from insulin_core.bundles.registry import ModelBundle
from insulin_core.whatif.safety import MONOTONE_GRID, above_history_flag, non_monotone_flag, out_of_range_flag
from insulin_core.whatif.engine import Scenario, WhatIf, nonmonotone_share

from .whatif_fixtures import L, NOW, SEQ, glucose_only_model, sample_windows, scenario_at


def test_out_of_range_flag(setup):
    cohort, result, bundle, engine = setup
    seq, now = np.full((1, L, len(SEQ_FEATURES)), 0.5), np.full((1, len(NOW_FEATURES)), 0.5)
    assert out_of_range_flag(seq, now) is None
    now[0, NOW["glucose"]] = 1.2
    seq[0, 2, SEQ["regular"]] = -0.3
    flag = out_of_range_flag(seq, now)
    assert flag.kind == "out_of_range" and "glucose" in flag.message and "Regular dose" in flag.message
    assert "_" not in flag.message  # plain words (labels.FEATURE_LABELS), no feature identifiers
    # through a prediction: a bundle whose training never saw glucose above 200 mg/dL
    meta = json.loads(json.dumps(bundle.meta))
    meta["scalers"]["now"]["high"][NOW["glucose"]] = 200.0
    eng = WhatIf(ModelBundle("narrow", bundle.model, meta), cohort.events, conformal=meta["conformal"])
    ws, idx = sample_windows(result, 1, seed=6)
    kinds = lambda p: {f.kind for f in p.flags}  # noqa: E731
    assert "out_of_range" in kinds(eng.predict(scenario_at(ws, idx[0], glucose_now=400.0)))
    assert "out_of_range" not in kinds(eng.predict(scenario_at(ws, idx[0], glucose_now=150.0)))


def test_non_monotone_flag_and_share(setup):
    cohort, result, bundle, engine = setup
    g = MONOTONE_GRID
    assert non_monotone_flag(g, np.round(g / 50)) is None
    assert non_monotone_flag(g, np.where(g > 300, 2.0, 6.0)).kind == "non_monotone"
    assert non_monotone_flag(g, np.where(g > 300, 5.5, 6.0)) is None  # within the 1 U tolerance
    falling = ModelBundle("falling", glucose_only_model(sign=-1.0, amount_bias=2.0), bundle.meta)
    eng = WhatIf(falling, cohort.events, conformal=bundle.meta["conformal"])
    ws, idx = sample_windows(result, 1, seed=7)
    pred = eng.predict(scenario_at(ws, idx[0]))
    assert "non_monotone" in {f.kind for f in pred.flags}
    rising = ModelBundle("rising", glucose_only_model(sign=1.0), bundle.meta)
    assert "non_monotone" not in {f.kind for f in WhatIf(rising, cohort.events, conformal=bundle.meta["conformal"])
                                  .predict(scenario_at(ws, idx[0])).flags}
    share = nonmonotone_share(falling, cohort.events, cohort.features, max_per_patient=1)
    assert share["share_patients_non_monotone"] == 1.0 and share["patients"] == 5
    assert nonmonotone_share(rising, cohort.events, cohort.features, max_per_patient=1)["share_patients_non_monotone"] == 0.0


def test_above_history_flag(setup):
    cohort, result, bundle, engine = setup
    history = engine.history_doses(1, before=cohort.events["timestamp"].max() + pd.Timedelta(hours=1))
    doses = history["dose"]
    assert len(doses) > 50 and (doses > 0).all()
    assert above_history_flag(float(doses.median()), history, "morning") is None
    flag = above_history_flag(float(doses.max()) + 4, history, "morning")
    assert flag.kind == "above_history" and "largest dose on record" in flag.message
    # through a prediction: a model that always says about 35 U
    big = ModelBundle("big", glucose_only_model(amount_bias=35.0), bundle.meta)
    pred = WhatIf(big, cohort.events, conformal=bundle.meta["conformal"]).predict(Scenario(1, "next", glucose_now=120.0))
    assert pred.dose >= 35 and "above_history" in {f.kind for f in pred.flags}



def test_the_largest_dose_on_record_leaves_out_a_typing_error(setup):
    """The safety check reads past doses by the history features' rule (features.history_doses)
    and leaves out the typing errors it marks: a 344 U entry must not make 40 U look usual."""
    cohort, _, bundle, engine = setup
    events = cohort.events
    last = events.loc[events["patient_id"] == 1, "timestamp"].max()
    typo = events[(events["patient_id"] == 1) & (events["kind"] == "regular")].iloc[[-1]].assign(
        timestamp=last + pd.Timedelta(hours=2), value=344.0, implausible=True)
    with_typo = pd.concat([events, typo], ignore_index=True)
    after = last + pd.Timedelta(hours=3)
    before_typo = engine.history_doses(1, before=after)
    history = WhatIf(bundle, with_typo, conformal=bundle.meta["conformal"]).history_doses(1, before=after)
    pd.testing.assert_frame_equal(history, before_typo)
    assert history["dose"].max() < 40
    assert above_history_flag(40.0, history, "morning") is not None


def test_a_coin_toss_p_dose_is_flagged_and_a_clear_one_is_not():
    from insulin_core.whatif.safety import uncertain_dose_flag

    assert uncertain_dose_flag(0.47, 0.5).kind == "uncertain" and "0.47" in uncertain_dose_flag(0.47, 0.5).message
    assert uncertain_dose_flag(0.55, 0.5) is not None
    assert uncertain_dose_flag(0.05, 0.5) is None and uncertain_dose_flag(0.97, 0.5) is None


def test_a_curve_at_zero_over_the_whole_range_is_flagged():
    from insulin_core.whatif.safety import flat_zero_flag

    assert flat_zero_flag(MONOTONE_GRID, np.zeros(len(MONOTONE_GRID))).kind == "flat_zero"
    assert flat_zero_flag(MONOTONE_GRID, np.where(MONOTONE_GRID > 300, 2.0, 0.0)) is None
