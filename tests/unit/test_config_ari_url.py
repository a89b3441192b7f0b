"""``asterisk.ari_url``: where serve reaches ARI (a fault-injecting proxy in tests)."""
from __future__ import annotations

import pytest

from callpilot.infra import config
from callpilot.infra.config import ConfigError


def _load(tmp_path, **env) -> config.Config:
    return config.load(env={"CALLPILOT_STATE_DIR": str(tmp_path), **env})


def test_default_is_asterisks_own_listener(tmp_path):
    cfg = _load(tmp_path, CALLPILOT_ARI_PORT="8123")
    assert cfg.asterisk.ari_url == ""
    assert cfg.ari_client_url == cfg.ari_url == "http://127.0.0.1:8123"


def test_override_from_environment_and_toml(tmp_path):
    cfg = _load(tmp_path, CALLPILOT_ARI_URL="http://127.0.0.1:9001/")
    assert cfg.ari_client_url == "http://127.0.0.1:9001"
    assert cfg.ari_url == f"http://127.0.0.1:{cfg.asterisk.ari_port}"   # Asterisk's side unchanged
    path = tmp_path / "c.toml"
    path.write_text('[asterisk]\nari_url = "https://ari.example.test:8443"\n')
    assert config.load(path, env={"CALLPILOT_STATE_DIR": str(tmp_path)}).ari_client_url \
        == "https://ari.example.test:8443"


def test_round_trips_through_to_toml(tmp_path):
    cfg = _load(tmp_path, CALLPILOT_ARI_URL="http://127.0.0.1:9001")
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(cfg))
    assert config.load(path, env={"CALLPILOT_STATE_DIR": str(tmp_path)}).ari_client_url \
        == "http://127.0.0.1:9001"


@pytest.mark.parametrize("url, words", [
    ("127.0.0.1:8088", "http(s) base URL"),
    ("ws://127.0.0.1:8088", "http(s) base URL"),
    ("http://", "http(s) base URL"),
    ("http://127.0.0.1:8088/ari", "no path"),
    ("http://127.0.0.1:8088?x=1", "no path"),
    ("http://user:pw@127.0.0.1:8088", "without credentials"),
    ("http://127.0.0.1:99999", "out of range"),
    ("http://127.0.0.1:http", "http(s) base URL"),
    ("http://127.0.0.1:0", "port 0"),
])
def test_bad_urls_are_refused_with_the_key_named(tmp_path, url, words):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, CALLPILOT_ARI_URL=url)
    assert "asterisk.ari_url" in str(err.value) and words in str(err.value)
