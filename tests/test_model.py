"""DoseNet and ModelConfig: shapes, gradients, non-negative doses, validation, JSON, rounding."""
import json
import math

import numpy as np
import pytest
import torch

from insulin_core.models.dose_rule import to_dose
from insulin_core.models.model import DoseNet, ModelConfig, pick_device


def dose_of(net, seq, now, patient, threshold=0.5, round_units=True):
    """The network's dose by the one dose rule (dose_rule.to_dose) on its two heads."""
    with torch.no_grad():
        amount, logit = net(seq, now, patient)
    return to_dose(amount.numpy(), torch.sigmoid(logit).numpy(), threshold, round_units)


def make_inputs(cfg: ModelConfig, b: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    seq = torch.randn(b, cfg.window, cfg.n_seq_features, generator=g)
    now = torch.randn(b, cfg.n_now_features, generator=g)
    patient = torch.randint(0, cfg.n_patients + 1, (b,), generator=g)
    return seq, now, patient


CONFIGS = [
    dict(lstm_layers=1, gru_layers=1, patient_embedding=8, n_now_features=5, n_targets=1),
    dict(lstm_layers=2, gru_layers=1, patient_embedding=0, n_now_features=5, n_targets=1),
    dict(lstm_layers=1, gru_layers=2, patient_embedding=8, n_now_features=0, n_targets=3),
    dict(lstm_layers=2, gru_layers=2, patient_embedding=0, n_now_features=0, n_targets=3),
]


@pytest.mark.parametrize("kw", CONFIGS)
def test_forward_shapes(kw):
    cfg = ModelConfig(n_seq_features=4, n_patients=3, window=6, lstm_hidden=8, gru_hidden=6,
                      dense=(8, 4), **kw)
    net = DoseNet(cfg)
    seq, now, patient = make_inputs(cfg, b=7)
    assert now.shape == (7, kw["n_now_features"])
    amount, logit = net(seq, now, patient)
    assert amount.shape == (7, kw["n_targets"])
    assert logit.shape == (7, kw["n_targets"])
    assert dose_of(net, seq, now, patient).shape == (7, kw["n_targets"])


def test_no_dense_layers_and_batch_of_one():
    cfg = ModelConfig(n_seq_features=2, n_now_features=1, n_patients=0, window=3, dense=())
    amount, logit = DoseNet(cfg)(*make_inputs(cfg, b=1))
    assert amount.shape == logit.shape == (1, 1)


def test_now_and_patient_may_be_omitted_when_unused():
    cfg = ModelConfig(n_seq_features=3, n_now_features=0, n_patients=4, window=5)
    net = DoseNet(cfg).eval()
    seq, now, _ = make_inputs(cfg)
    a1, l1 = net(seq, None, None)
    a2, l2 = net(seq, now, torch.zeros(len(seq), dtype=torch.long))
    assert torch.equal(a1, a2) and torch.equal(l1, l2)


def test_out_of_range_patient_is_the_unknown_patient():
    cfg = ModelConfig(n_seq_features=3, n_now_features=2, n_patients=4, window=5)
    net = DoseNet(cfg).eval()
    seq, now, _ = make_inputs(cfg, b=3)
    unknown = net(seq, now, torch.zeros(3, dtype=torch.long))[0]
    for bad in (5, 99, -1):
        assert torch.equal(net(seq, now, torch.full((3,), bad))[0], unknown)
    assert not torch.equal(net(seq, now, torch.full((3,), 2))[0], unknown)


@pytest.mark.parametrize("kw", CONFIGS)
def test_gradients_reach_every_parameter(kw):
    # Seeded: with a dense layer this small, about 3% of random initialisations leave all 8 ReLU
    # units of one of the 5 members dead on 16 inputs (no gradient below them, a fact of ReLU at
    # init, not a wiring fault); this test checks the wiring, so it fixes the weights.
    torch.manual_seed(0)
    cfg = ModelConfig(n_seq_features=4, n_patients=3, window=5, lstm_hidden=8, gru_hidden=6,
                      dense=(8,), dropout=0.0, **kw)
    net = DoseNet(cfg)
    seq, now, _ = make_inputs(cfg, b=16)
    patient = torch.arange(16) % (cfg.n_patients + 1)  # every embedding row used
    amount, logit = net(seq, now, patient)
    (amount.sum() + logit.sum()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_amount_and_dose_never_negative():
    cfg = ModelConfig(n_seq_features=3, n_now_features=2, n_patients=2, window=4, n_targets=3, members=1)
    net = DoseNet(cfg).eval()
    with torch.no_grad():
        net.members[0].amount.bias.fill_(-50.0)  # pushes the raw amount far below zero
        net.members[0].dose.bias.fill_(50.0)  # always "dose given"
    seq, now, patient = make_inputs(cfg, b=64)
    amount, _ = net(seq * 100, now * 100, patient)
    assert (amount >= 0).all()
    for rnd in (True, False):
        dose = dose_of(net, seq * 100, now * 100, patient, round_units=rnd)
        assert (dose >= 0).all()
        assert not np.signbit(dose).any()  # no -0.0 either


def hand_set_net(amount_value: float, p_dose: float, n_targets: int = 1) -> DoseNet:
    """A net whose heads ignore the inputs: amount = amount_value, P(dose) = p_dose."""
    cfg = ModelConfig(n_seq_features=2, n_now_features=1, n_patients=1, window=3,
                      n_targets=n_targets, dropout=0.0, members=1)
    net = DoseNet(cfg).eval()
    with torch.no_grad():
        net.members[0].amount.weight.zero_()
        net.members[0].dose.weight.zero_()
        net.members[0].amount.bias.fill_(amount_value + math.log(-math.expm1(-amount_value)))
        net.members[0].dose.bias.fill_(math.log(p_dose / (1 - p_dose)))
    return net


def test_predict_dose_threshold_and_rounding():
    net = hand_set_net(amount_value=6.7, p_dose=0.7)
    x = make_inputs(net.cfg, b=4)
    amount, logit = net(*x)
    assert torch.allclose(amount, torch.full((4, 1), 6.7), atol=1e-4)
    assert torch.allclose(torch.sigmoid(logit), torch.full((4, 1), 0.7), atol=1e-5)
    assert (dose_of(net, *x) == 7.0).all()  # rounded to whole units
    assert np.allclose(dose_of(net, *x, round_units=False), 6.7, atol=1e-4)
    assert (dose_of(net, *x, threshold=0.69) == 7.0).all()
    assert (dose_of(net, *x, threshold=0.71) == 0.0).all()  # no dose
    assert (dose_of(hand_set_net(6.3, 0.7), *x) == 6.0).all()
    assert (dose_of(hand_set_net(6.7, 0.3), *x) == 0.0).all()


def test_the_dose_rule_rounds_half_up_and_masks():
    amount = np.array([2.5, 0.4, 3.49, 8.0])
    p = np.array([0.95, 0.95, 0.95, 0.05])
    assert to_dose(amount, p).tolist() == [3.0, 0.0, 3.0, 0.0]
    assert to_dose(amount, p, round_units=False).tolist() == [2.5, 0.4, 3.49, 0.0]


@pytest.mark.parametrize("bad, words", [
    (dict(n_seq_features=0), "n_seq_features"),
    (dict(n_now_features=-1), "n_now_features"),
    (dict(n_patients=-2), "n_patients"),
    (dict(window=0), "window"),
    (dict(window=513), "window"),
    (dict(lstm_hidden=0), "lstm_hidden"),
    (dict(lstm_hidden=1025), "lstm_hidden"),
    (dict(gru_hidden=-4), "gru_hidden"),
    (dict(gru_hidden=4096), "gru_hidden"),
    (dict(lstm_layers=0), "lstm_layers"),
    (dict(gru_layers=9), "gru_layers"),
    (dict(dense=(64, 0)), "dense[1]"),
    (dict(dense=(2000,)), "dense[0]"),
    (dict(dense=(8,) * 9), "dense"),
    (dict(dropout=-0.1), "dropout"),
    (dict(dropout=0.95), "dropout"),
    (dict(dropout="0.1"), "dropout"),
    (dict(patient_embedding=-1), "patient_embedding"),
    (dict(n_targets=0), "n_targets"),
    (dict(n_targets=4), "n_targets"),
    (dict(lstm_hidden=64.0), "integer"),
    (dict(window=True), "integer"),
])
def test_config_validation(bad, words):
    kw = dict(n_seq_features=3, n_now_features=2, n_patients=5) | bad
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        ModelConfig(**kw)


def test_config_is_frozen_and_accepts_dense_as_list():
    cfg = ModelConfig(n_seq_features=3, n_now_features=2, n_patients=5, dense=[16, 8])
    assert cfg.dense == (16, 8)
    with pytest.raises(Exception):
        cfg.window = 3


def test_dense_layers_are_read_from_text_one_way():
    # configs.parse_dense: the CLI's --dense, the Train page's field and the tuner's values
    from insulin_core.configs import dense_text, parse_dense

    assert parse_dense("128,64") == parse_dense(" 128 , 64 ,") == (128, 64)
    assert parse_dense(dense_text((32, 16), ", ")) == parse_dense(dense_text((32, 16))) == (32, 16)
    assert parse_dense("") == ()  # no dense layer: ModelConfig allows it, the CLI refuses it itself
    for bad in ("64,abc", "1 2", "6.4"):  # "1 2" is not read as 12
        with pytest.raises(ValueError, match="whole numbers separated by commas"):
            parse_dense(bad)


def test_config_json_round_trip():
    cfg = ModelConfig(n_seq_features=20, n_now_features=25, n_patients=70, window=12,
                      lstm_layers=2, dense=(32, 16, 8), dropout=0.2, patient_embedding=0,
                      n_targets=3)
    text = json.dumps(cfg.to_dict())
    d = json.loads(text)
    assert d["dense"] == [32, 16, 8]
    back = ModelConfig.from_dict(d)
    assert back == cfg
    assert isinstance(back.dense, tuple)


def test_from_dict_rejects_unknown_and_missing_keys():
    d = ModelConfig(n_seq_features=3, n_now_features=2, n_patients=5).to_dict()
    with pytest.raises(ValueError, match="unknown ModelConfig keys.*hiden"):
        ModelConfig.from_dict(d | {"hiden": 3})
    del d["n_patients"]
    with pytest.raises(ValueError, match="n_patients"):
        ModelConfig.from_dict(d)


def test_pick_device():
    if torch.cuda.is_available():
        assert pick_device().type == "cuda"
    else:
        assert pick_device() == torch.device("cpu")
        assert pick_device("cuda") == torch.device("cpu")  # falls back
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device"):
        pick_device("tpu")


# --- piecewise-linear bins of the decision-moment features ----------------------------------------

def test_bins_place_a_value_inside_training_quantile_bins():
    from insulin_core.models.model import PiecewiseLinear

    enc = PiecewiseLinear(2, 4)
    train = torch.stack([torch.arange(0.0, 101.0), torch.full((101,), 3.0)], dim=1)  # a ramp, a constant
    enc.fit(train)
    assert torch.allclose(enc.low[0], torch.tensor([0.0, 25.0, 50.0, 75.0]))
    x = torch.tensor([[30.0, 3.0], [-5.0, 3.0], [500.0, 3.0]])
    out = enc(x).reshape(3, 2, 4)
    assert torch.allclose(out[0, 0], torch.tensor([1.0, 0.2, 0.0, 0.0]))  # 30: past bin 1, a fifth into bin 2
    assert out[1, 0].sum() == 0 and out[2, 0].sum() == 4  # clipped below and above the training range
    assert out[:, 1].abs().sum() == 0  # a constant feature has zero-width bins: it encodes as 0


def test_bins_are_fit_on_the_training_part_and_saved_with_the_weights(tmp_path):
    from insulin_core.models.arrays import ArrayPart, TrainData
    from insulin_core.models.train import TrainConfig, train_model

    g = torch.Generator().manual_seed(0)
    n, cfg = 64, ModelConfig(n_seq_features=3, n_now_features=2, n_patients=0, window=4, lstm_hidden=4,
                             gru_hidden=4, dense=(8,), patient_embedding=0, now_bins=4)

    def part(scale):
        return ArrayPart(torch.rand(n, 4, 3, generator=g).numpy(), (scale * torch.rand(n, 2, generator=g)).numpy(),
                         torch.zeros(n, dtype=torch.long).numpy(), torch.rand(n, 1, generator=g).numpy())
    train, val = part(1.0), part(100.0)  # validation values far outside: the edges must not see them
    model = train_model(cfg, TrainConfig(epochs=2, threads=1), TrainData(train, val)).model
    assert float(model.bins.low.max()) < 1.0
    state = model.state_dict()
    assert "bins.low" in state and "bins.inv_width" in state


def test_configs_written_before_the_bins_read_as_no_bins():
    d = ModelConfig(n_seq_features=3, n_now_features=2, n_patients=1).to_dict()
    del d["now_bins"]
    assert ModelConfig.from_dict(d).now_bins == 0
    assert DoseNet(ModelConfig.from_dict(d)).bins is None
