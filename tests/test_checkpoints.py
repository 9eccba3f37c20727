"""Saving and loading models: round trips and every kind of bad file."""
import pytest
import torch

from conftest import tiny_config
from model import SPYL
from utils import SPYLError


def test_save_load_round_trip(tmp_path):
    m = SPYL(tiny_config(s_dim=7))
    path = tmp_path / "m.pth"
    m.save(path)
    loaded = SPYL.load(path)
    assert loaded.config == m.config and not loaded.training
    for (k, a), (_, b) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.rand(2, 8, 3, 64, 64)
    m.eval()
    assert torch.equal(m.encode(x)[0], loaded.encode(x)[0])
    assert not list(tmp_path.glob(".tmp-*"))  # nothing left behind by the atomic write


def test_half_precision_file_loads_back_in_fp32(tmp_path):
    m = SPYL(tiny_config(conv_width=32, hidden=64)).eval()
    m.save(tmp_path / "full.pth")
    m.save(tmp_path / "half.pth", half=True)
    loaded = SPYL.load(tmp_path / "half.pth")
    assert (tmp_path / "half.pth").stat().st_size < 0.55 * (tmp_path / "full.pth").stat().st_size
    for (k, a), (_, b) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert b.dtype == a.dtype, k  # fp32 again (and the int64 BatchNorm counters untouched)
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-7), k
        assert torch.equal(a.half().to(a.dtype), b), k  # exactly the fp16 rounding, nothing else
    x = torch.rand(2, 8, 3, 64, 64)
    assert torch.allclose(m.encode(x)[0], loaded.encode(x)[0], rtol=1e-2, atol=1e-4)


def test_missing_file(tmp_path):
    with pytest.raises(SPYLError, match="does not exist"):
        SPYL.load(tmp_path / "nope.pth")


def test_truncated_file(tmp_path):
    path = tmp_path / "m.pth"
    SPYL(tiny_config()).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SPYLError, match="truncated|corrupt"):
        SPYL.load(path)


def test_not_our_checkpoint(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, path)
    with pytest.raises(SPYLError, match="not a SPYL checkpoint"):
        SPYL.load(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(SPYLError, match="not a SPYL checkpoint"):
        SPYL.load(path)


def test_pickled_whole_model_is_refused(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save(SPYL(tiny_config()), path)  # a whole pickled module: loading it could run code
    with pytest.raises(SPYLError, match="pickled"):
        SPYL.load(path)


def test_config_mismatch(tmp_path):
    ckpt = SPYL(tiny_config()).checkpoint()
    ckpt["config"]["s_dim"] = 11  # weights say 6
    path = tmp_path / "m.pth"
    torch.save(ckpt, path)
    with pytest.raises(SPYLError, match="does not match its stored config"):
        SPYL.load(path)
    ckpt["config"]["s_dim"] = 6
    ckpt["config"]["new_field"] = 1
    torch.save(ckpt, path)
    with pytest.raises(SPYLError, match="does not know"):
        SPYL.load(path)


def test_other_format_version(tmp_path):
    ckpt = SPYL(tiny_config()).checkpoint()
    ckpt["version"] = 99
    torch.save(ckpt, tmp_path / "m.pth")
    with pytest.raises(SPYLError, match="version 99"):
        SPYL.load(tmp_path / "m.pth")


def test_a_config_from_before_the_init_field_says_it_used_torch_defaults(tmp_path):
    from dataclasses import asdict
    from model import SPYLConfig
    old = asdict(SPYLConfig())
    del old["init"], old["mi_density"]
    cfg = SPYLConfig.from_dict(old)
    assert cfg.init == "torch" and cfg.mi_density == "exact"
    assert SPYLConfig.from_dict(asdict(SPYLConfig())).init == "reference"
