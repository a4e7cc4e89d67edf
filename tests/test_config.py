import pytest

from oel.config import OELConfig
from oel.errors import OELError


def test_defaults_are_valid_and_round_trip():
    cfg = OELConfig()
    assert OELConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("bad", [{"action_mode": "dance"}, {"rounds": 0}, {"train_games": "4"}, {"temperature": 0},
                                 {"merge_distance": 3}, {"challenges": []}, {"memory_url": "localhost:8000"},
                                 {"seed": "zero"}, {"memory_url": 5}, {"model": 135}, {"challenges": [1, 2]},
                                 {"temperature": float("nan")}, {"learning_rate": float("inf")}, {"greedy": "no"},
                                 {"teacher_context": "gossip"}, {"utility_threshold": "high"}, {"fresh_games": 1}])
def test_invalid_settings_name_the_field(bad):
    with pytest.raises(OELError) as err:
        OELConfig.from_dict(bad)
    assert list(bad)[0] in str(err.value)


def test_unknown_key_is_an_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("rounds = 3\nlearning_rat = 0.1\n")
    with pytest.raises(OELError, match="unknown setting.*learning_rat"):
        OELConfig.from_file(path)


def test_broken_and_missing_files(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("rounds = [\n")
    with pytest.raises(OELError, match="not valid TOML"):
        OELConfig.from_file(path)
    with pytest.raises(OELError, match="not found"):
        OELConfig.from_file(tmp_path / "missing.toml")


def test_file_values_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('rounds = 3\naction_mode = "generate"\n')
    cfg = OELConfig.from_file(path, rounds=5)
    assert (cfg.rounds, cfg.action_mode) == (5, "generate")


def test_wrong_types_from_a_toml_file_are_one_line_errors(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("temperature = nan\n")
    with pytest.raises(OELError, match="temperature: Input should be a finite number, got nan"):
        OELConfig.from_file(path)
    path.write_text('greedy = "no"\n')  # was silently true
    with pytest.raises(OELError, match="greedy: Input should be a valid boolean"):
        OELConfig.from_file(path)
