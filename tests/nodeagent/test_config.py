import argparse
from pathlib import Path

import pytest

from nodeagent.config import ConfigError, build_config, parse_kernel_cmdline


def _args(**given) -> argparse.Namespace:
    base = dict(ledger=None, farm=None, enroll=None, data=None, mirror=[], storage=[], facts=None)
    return argparse.Namespace(**{**base, **given})


def test_kernel_arguments_are_read_and_others_ignored():
    cmdline = (
        "BOOT_IMAGE=/vmlinuz console=ttyS0 zos.farm=7 "
        'zos.ledger=http://10.0.2.100:8000 zos.enroll="zet_a b"'
    )
    assert parse_kernel_cmdline(cmdline) == {
        "farm": "7",
        "ledger": "http://10.0.2.100:8000",
        "enroll": "zet_a b",
    }


def test_flags_win_over_the_kernel_command_line(tmp_path: Path):
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("zos.farm=7 zos.ledger=http://kernel:8000 zos.enroll=zet_k")
    config = build_config(_args(farm=3, data=str(tmp_path)), cmdline)
    assert (config.farm_id, config.ledger_url, config.enroll_token) == (
        3,
        "http://kernel:8000",
        "zet_k",
    )
    assert config.storage == (tmp_path,)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "no ledger URL"),
        ({"ledger": "ftp://x"}, "must start with http"),
        ({"ledger": "http://x"}, "no farm"),
    ],
)
def test_missing_or_bad_settings_say_how_to_fix(tmp_path: Path, given, message):
    with pytest.raises(ConfigError, match=message):
        build_config(_args(**given), tmp_path / "no-cmdline")


def test_bad_farm_in_kernel_command_line(tmp_path: Path):
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("zos.farm=seven zos.ledger=http://x")
    with pytest.raises(ConfigError, match="farm must be a number"):
        build_config(_args(), cmdline)


def test_runner_memory_from_flag_environment_or_kernel(tmp_path: Path):
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("zos.farm=7 zos.ledger=http://x zos.runner_memory=2048")
    assert build_config(_args(), cmdline, {}).runner_memory_mb == 2048
    env = {"ZOS_RUNNER_MEMORY_MB": "512"}
    assert build_config(_args(), cmdline, env).runner_memory_mb == 512
    assert build_config(_args(runner_memory=0), cmdline, env).runner_memory_mb == 0
    cmdline.write_text("zos.farm=7 zos.ledger=http://x")
    assert build_config(_args(), cmdline, {}).runner_memory_mb == 1024
    with pytest.raises(ConfigError, match="at least 256 MiB"):
        build_config(_args(runner_memory=64), cmdline, {})


def test_image_cache_limit_from_flag_or_kernel(tmp_path: Path):
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("zos.ledger=http://l:8000 zos.farm=1 zos.image_cache_gb=40")
    assert build_config(_args(), cmdline, {}).image_cache_gb == 40
    assert build_config(_args(image_cache_gb=8), cmdline, {}).image_cache_gb == 8
    cmdline.write_text("zos.ledger=http://l:8000 zos.farm=1")
    assert build_config(_args(), cmdline, {}).image_cache_gb == 0  # a quarter of the pool
    with pytest.raises(ConfigError, match="image cache size must be 0"):
        build_config(_args(image_cache_gb=-1), cmdline, {})
    cmdline.write_text("zos.ledger=http://l:8000 zos.farm=1 zos.image_cache_gb=lots")
    with pytest.raises(ConfigError, match="number of GiB, got 'lots'"):
        build_config(_args(), cmdline, {})
