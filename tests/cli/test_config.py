"""Settings precedence: flag over environment over config file over default."""

import stat

import pytest

from client.config import DEFAULT_URL, load_config, write_config_value
from client.errors import CliError


def _write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_any_file(tmp_path):
    config = load_config({"HOME": str(tmp_path)})
    assert config.url == DEFAULT_URL
    assert config.token is None
    assert config.key == "default"
    assert config.path == tmp_path / ".config/zos/config.toml"
    assert config.keys_dir == tmp_path / ".config/zos/keys"
    assert config.sources["url"] == "default"


def test_file_then_env_then_flag(tmp_path):
    _write(
        tmp_path / ".config/zos/config.toml",
        'url = "http://file:1"\ntoken = "file-token"\nkey = "filekey"\n',
    )
    env = {"HOME": str(tmp_path)}
    assert load_config(env).url == "http://file:1"
    assert load_config(env).token == "file-token"
    env.update(ZOS_URL="http://env:2/", ZOS_TOKEN="env-token", ZOS_KEY="envkey")
    config = load_config(env)
    assert (config.url, config.token, config.key) == ("http://env:2", "env-token", "envkey")
    assert config.sources["token"] == "env ZOS_TOKEN"
    flagged = load_config(env, url="http://flag:3", key="flagkey")
    assert (flagged.url, flagged.key) == ("http://flag:3", "flagkey")
    assert flagged.sources["url"] == "flag"


def test_zos_config_and_xdg_config_home(tmp_path):
    other = _write(tmp_path / "elsewhere.toml", 'url = "http://other:9"\n')
    config = load_config({"HOME": str(tmp_path), "ZOS_CONFIG": str(other)})
    assert config.url == "http://other:9"
    config = load_config({"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert config.path == tmp_path / "xdg/zos/config.toml"
    assert config.keys_dir == tmp_path / "xdg/zos/keys"


def test_missing_zos_config_file_is_an_error(tmp_path):
    with pytest.raises(CliError, match="does not exist") as caught:
        load_config({"HOME": str(tmp_path), "ZOS_CONFIG": str(tmp_path / "nope.toml")})
    assert "ZOS_CONFIG" in caught.value.hint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("url = ", "not valid TOML"),
        ('urll = "http://x"', "unknown setting 'urll'"),
        ("url = 3", "must be a string"),
    ],
)
def test_bad_config_files_say_what_is_wrong(tmp_path, text, message):
    _write(tmp_path / ".config/zos/config.toml", text)
    with pytest.raises(CliError, match=message):
        load_config({"HOME": str(tmp_path)})


def test_url_must_be_http(tmp_path):
    with pytest.raises(CliError, match="must start with http") as caught:
        load_config({"HOME": str(tmp_path), "ZOS_URL": "localhost:8000"})
    assert "env ZOS_URL" in caught.value.message


def test_write_config_value_keeps_other_keys_and_is_private(tmp_path):
    path = _write(tmp_path / "c/config.toml", 'url = "http://keep:1"\n')
    write_config_value(path, "token", 'tok"en\\with\u00e9')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = load_config({"HOME": str(tmp_path), "ZOS_CONFIG": str(path)})
    assert config.url == "http://keep:1"
    assert config.token == 'tok"en\\with\u00e9'
