import pytest

from unpaired.config import Config, ConfigError, diff, parse_override, resolve, set_value
from unpaired.methods import preset


def test_presets_follow_reference():
    cut, fast = preset("cut"), preset("fastcut")
    assert (cut.model.lambda_nce, cut.model.nce_idt, cut.model.flip_equivariance) == (1.0, True, False)
    assert (cut.train.epochs, cut.train.epochs_decay) == (200, 200)
    assert (fast.model.lambda_nce, fast.model.nce_idt, fast.model.flip_equivariance) == (10.0, False, True)
    assert (fast.train.epochs, fast.train.epochs_decay) == (150, 50)
    for name in ("cut-focal", "fastcut-focal"):
        m = preset(name).model
        assert (m.focal_gamma, m.focal_alpha) == (2.0, 0.25)
    assert (cut.train.lr, cut.train.beta1, cut.train.beta2) == (2e-4, 0.5, 0.999)
    assert cut.model.nce_layers == [0, 4, 8, 12, 16] and cut.model.num_patches == 256


def test_set_value_dotted_and_bare_keys():
    cfg = Config()
    set_value(cfg, "model.focal_gamma", 3)
    set_value(cfg, "lr", 1e-3)
    set_value(cfg, "nce_layers", [0, 4])
    assert cfg.model.focal_gamma == 3.0 and isinstance(cfg.model.focal_gamma, float)
    assert cfg.train.lr == 1e-3 and cfg.model.nce_layers == [0, 4]


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("model.nope", 1, "unknown setting"),
        ("nope", 1, "unknown setting"),
        ("model.ngf", "wide", "must be an integer"),
        ("model.nce_idt", 1, "true or false"),
        ("train.iters", None, None),
    ],
)
def test_set_value_errors(key, value, match):
    cfg = Config()
    if match is None:
        set_value(cfg, key, value)
        assert cfg.train.iters is None
    else:
        with pytest.raises(ConfigError, match=match):
            set_value(cfg, key, value)


def test_parse_override_uses_yaml_types():
    assert parse_override("a=3") == ("a", 3)
    assert parse_override("b=[0, 4]") == ("b", [0, 4])
    assert parse_override("c=true") == ("c", True)
    cfg = Config()
    set_value(cfg, *parse_override("lr=2e-4"))  # YAML reads 2e-4 as a string; float fields accept it
    assert cfg.train.lr == 2e-4
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("nothing")


def test_resolve_derives_load_size_and_validates():
    cfg = Config()
    cfg.data.crop_size = 32
    assert resolve(cfg).data.load_size == 36  # 32 * 286 / 256, rounded
    bad = Config()
    bad.data.load_size = 100
    with pytest.raises(ConfigError, match="load_size"):
        resolve(bad)
    bad = Config()
    bad.data.crop_size = 34
    with pytest.raises(ConfigError, match="multiple of 4"):
        resolve(bad)


def test_round_trip_and_diff():
    a = resolve(preset("cut-focal"))
    b = Config.from_dict(a.to_dict())
    assert diff(a, b) == []
    b.model.focal_gamma = 3.0
    b.train.iters = 5
    assert diff(a, b) == ["model.focal_gamma: 2.0 -> 3.0", "train.iters: None -> 5"]
    assert diff(a, b, ignore={"train.iters"}) == ["model.focal_gamma: 2.0 -> 3.0"]
