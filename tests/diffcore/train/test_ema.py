from fractions import Fraction

import pytest
import torch
from torch import nn

from diffcore.train import EMA


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.0, 8.0]))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))


def set_w(model, values):
    with torch.no_grad():
        model.w.copy_(torch.tensor(values))


def test_ema_math_exact():
    # decay 3/4 and dyadic values: every step is exact in binary floating point.
    model = Toy()
    ema = EMA(model, decay=0.75)
    expected = [Fraction(0), Fraction(8)]
    for values in ([4.0, 0.0], [-2.0, 16.0], [1.0, 1.0]):
        set_w(model, values)
        ema.update(model)
        expected = [
            Fraction(3, 4) * e + Fraction(1, 4) * Fraction(v)
            for e, v in zip(expected, values, strict=True)
        ]
    assert ema.shadow["w"].tolist() == [float(e) for e in expected]
    assert ema.num_updates == 3
    assert "steps" not in ema.shadow  # buffers are not averaged


@pytest.mark.parametrize(
    ("warmup", "n", "expected"),
    [
        ("none", 0, 0.999),
        ("tf", 0, 0.1),
        ("tf", 90, 91 / 100),
        ("tf", 10**6, 0.999),
        ("power", 0, 0.0),
        ("power", 7, 1 - 8 ** (-2 / 3)),
        ("power", 10**9, 0.999),
    ],
)
def test_decay_warmup(warmup, n, expected):
    ema = EMA(Toy(), decay=0.999, warmup=warmup)
    assert ema.decay_at(n) == pytest.approx(expected, rel=1e-12)


def test_power_warmup_first_update_copies():
    model = Toy()
    ema = EMA(model, decay=0.999, warmup="power")
    set_w(model, [3.0, -5.0])
    ema.update(model)
    assert ema.shadow["w"].tolist() == [3.0, -5.0]


def test_copy_to_restore_and_context():
    model = Toy()
    ema = EMA(model, decay=0.5)
    set_w(model, [2.0, 2.0])
    ema.update(model)  # shadow = [1, 5]
    backup = ema.copy_to(model)
    assert model.w.tolist() == [1.0, 5.0]
    ema.restore(model, backup)
    assert model.w.tolist() == [2.0, 2.0]
    with ema.applied_to(model):
        assert model.w.tolist() == [1.0, 5.0]
    assert model.w.tolist() == [2.0, 2.0]


def test_state_dict_roundtrip_and_mismatch():
    model = Toy()
    ema = EMA(model, decay=0.5, warmup="tf")
    set_w(model, [2.0, 2.0])
    ema.update(model)
    other = EMA(Toy(), decay=0.9)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1 and other.decay == 0.5 and other.warmup == "tf"
    assert torch.equal(other.shadow["w"], ema.shadow["w"])
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict({"num_updates": 0, "shadow": {}})
    with pytest.raises(ValueError, match="does not match the EMA"):
        ema.update(nn.Linear(2, 2))


def test_bad_settings():
    with pytest.raises(ValueError, match="decay"):
        EMA(Toy(), decay=1.5)
    with pytest.raises(ValueError, match="warmup"):
        EMA(Toy(), warmup="linear")  # type: ignore[arg-type]
