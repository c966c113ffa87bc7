"""The one predictor contract (predictor.py) and the one fit-and-calibrate (pipeline.Prepared)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from insulin_core.models.baselines import make_baseline
from insulin_core.models.dose_rule import continuous_dose
from insulin_core.models.intervals import conformal_from_scores, zero_width_table
from insulin_core.models.model import DoseNet, ModelConfig
from insulin_core.models.predictor import BaselinePredictor, DosePredictor, InputScaling, NetworkPredictor
from insulin_core.prep.scaling import MinMaxScaler

CONTRACT = {"heads", "dose", "dose_of", "interval", "interval_of", "calibrated", "coverage", "coverage_of",
            "threshold_for"}


def public_methods(cls) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}


def test_each_kind_has_the_contract_and_no_method_that_fails_on_it(setup):
    """A method of one kind only (the network's edited inputs) lives on that kind, so every method
    a predictor has answers; the contract's answers agree with each other for both kinds."""
    cohort, result, bundle, engine = setup
    prepared = result.prepared
    ws, val, test = prepared.ws, prepared.val_idx, prepared.split.test[:40]
    assert public_methods(BaselinePredictor) == CONTRACT
    assert public_methods(NetworkPredictor) == CONTRACT | {"heads_of", "heads_of_inputs"}
    kinds = [bundle.predictor(), BaselinePredictor(make_baseline("sliding_scale").fit(ws, prepared.train_idx))]
    for predictor in kinds:
        assert isinstance(predictor, DosePredictor)
        calibrated = predictor.calibrated(ws, val)
        amount, p = calibrated.heads(ws, test)
        dose, low, high = calibrated.interval(ws, test)
        patients = ws.patient_id[test]
        assert np.array_equal(dose, calibrated.dose(ws, test)) and np.array_equal(dose, calibrated.dose_of(amount, p, patients))
        assert (low <= dose).all() and (dose <= high).all() and calibrated.conformal["part"] == "val"
        assert calibrated.coverage(ws, test) == calibrated.coverage_of(amount, p, patients, ws.y[test, 0])
    # the network's own: inputs given apart from the WindowSet answer as the windows do
    pid = int(ws.patient_id[test[0]])
    mine = test[ws.patient_id[test] == pid][:3]
    for a, b in zip(kinds[0].heads_of(ws.seq[mine], ws.now[mine], pid), kinds[0].heads(ws, mine)):
        assert np.array_equal(a, b)


def test_prepared_calibrate_keeps_a_bundles_table_and_calibrates_one_otherwise(setup):
    cohort, result, bundle, engine = setup
    prepared = result.prepared
    kept = prepared.calibrate(bundle.predictor())
    assert kept.conformal is bundle.meta["conformal"]
    fresh = prepared.calibrate(prepared.predictor(result.training.model))
    amount, p = fresh.heads(prepared.ws, prepared.val_idx)
    expected = conformal_from_scores(continuous_dose(amount, p, fresh.threshold), prepared.ws.y[prepared.val_idx, 0], p)
    assert fresh.conformal == {**expected, "part": "val"}


def test_fit_baselines_fits_on_the_training_part_and_calibrates_on_validation(setup):
    cohort, result, bundle, engine = setup
    prepared = result.prepared
    ws, every = prepared.ws, np.arange(len(prepared.ws))
    found = prepared.fit_baselines(["sliding_scale", "last_same_daypart"])
    assert list(found) == ["sliding_scale", "last_same_daypart"]
    for name, predictor in found.items():
        by_hand = BaselinePredictor(make_baseline(name).fit(ws, prepared.train_idx)).calibrated(ws, prepared.val_idx)
        assert predictor.conformal == by_hand.conformal, name
        assert all(np.array_equal(a, b) for a, b in zip(predictor.interval(ws, every), by_hand.interval(ws, every))), name
    # fit on another part, a baseline answers differently: the training part is what it saw
    other = BaselinePredictor(make_baseline("sliding_scale").fit(ws, prepared.split.test))
    assert not np.array_equal(other.dose(ws, every), found["sliding_scale"].dose(ws, every))


def test_a_bundle_reads_back_the_scaling_it_was_trained_with(setup):
    cohort, result, bundle, engine = setup
    scaling, back = result.prepared.scaling, bundle.scaling
    assert isinstance(back, InputScaling) and back.patient_index == scaling.patient_index
    for a, b in ((scaling.seq, back.seq), (scaling.now, back.now)):
        assert np.array_equal(a.low, b.low) and np.array_equal(a.high, b.high)


def test_a_zero_width_table_gives_the_dose_as_both_bounds(setup):
    cohort, result, bundle, engine = setup
    ws = result.prepared.ws
    idx = np.arange(min(200, len(ws)))
    dose, low, high = bundle.predictor(zero_width_table()).interval(ws, idx)
    assert np.array_equal(low, dose) and np.array_equal(high, dose) and (dose > 0).any()


def test_a_patient_new_to_the_network_gets_its_new_patient_threshold_and_a_known_one_the_other():
    """The dose, the interval and the calibration all gate each row at its patient's threshold:
    known patients at dose_threshold, anyone else (the unknown row) at new_patient_threshold."""
    cfg = ModelConfig(n_seq_features=2, n_now_features=1, n_patients=1, window=3, lstm_hidden=4, gru_hidden=4,
                      dense=(4,), patient_embedding=2)
    net = DoseNet(cfg).eval()
    with torch.no_grad():
        net.dose_threshold.fill_(0.6)
        net.new_patient_threshold.fill_(0.3)
    scaler = MinMaxScaler(np.zeros(2), np.ones(2))
    predictor = NetworkPredictor(net, InputScaling(scaler, MinMaxScaler(np.zeros(1), np.ones(1)), {7: 1}))
    assert predictor.threshold_for([7, 99, 7]) == pytest.approx([0.6, 0.3, 0.6])  # float32 buffers
    assert float(predictor.threshold_for(99)) == pytest.approx(0.3)
    amount, p = np.array([4.0, 4.0, 4.0]), np.array([0.45, 0.45, 0.65])
    assert predictor.dose_of(amount, p, [7, 99, 7]).tolist() == [0.0, 4.0, 4.0]
    assert predictor.dose_of(amount, p, 99).tolist() == [4.0, 4.0, 4.0]
    table = conformal_from_scores(np.array([0.0, 4.0]), np.array([0.0, 4.0]), np.array([0.1, 0.9]))
    dose, low, high = replace(predictor, conformal=table).interval_of(amount, p, [7, 99, 7])
    assert dose.tolist() == [0.0, 4.0, 4.0] and (low <= dose).all() and (dose <= high).all()
    # a baseline knows no patients: one threshold for all
    assert BaselinePredictor(make_baseline("sliding_scale")).threshold_for([7, 99]).tolist() == [0.5, 0.5]
