"""Pure parts of the isolated backends: sizes, the apt mirror lookup, the kernelspec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeflow_magic.errors import BackendUnavailable, ConfigError
from codeflow_magic.executors.bwrap import write_kernelspec
from codeflow_magic.executors.image import apt_mirror, dockerfile
from codeflow_magic.executors.limits import Limits, format_size, parse_size


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512m", 512 * 1024**2),
        ("2g", 2 * 1024**3),
        ("1.5G", int(1.5 * 1024**3)),
        ("64MiB", 64 * 1024**2),
        ("100000000", 100_000_000),
    ],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["lots", "12x", "", "-5m", "1k"])
def test_parse_size_rejects_with_a_clear_message(text: str) -> None:
    with pytest.raises(ConfigError, match="memory limit"):
        parse_size(text)


def test_format_size_and_headroom() -> None:
    assert format_size(512 * 1024**2) == "512m"
    assert format_size(2 * 1024**3) == "2g"
    limits = Limits(parse_size("512m"), 1.0, 64)
    assert limits.address_space == 768 * 1024**2
    assert limits.memory_text == "512m"


def test_apt_mirror_from_deb822_and_legacy_lists(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main contrib\n"
    )
    assert apt_mirror("bookworm", tmp_path) == "http://mirror.invalid/debian"
    legacy = tmp_path / "legacy"
    (legacy / "sources.list.d").mkdir(parents=True)
    (legacy / "sources.list").write_text(
        "# comment\ndeb [arch=amd64] http://other.invalid/debian trixie main\n"
    )
    assert apt_mirror("trixie", legacy) == "http://other.invalid/debian"
    with pytest.raises(BackendUnavailable, match="no apt source for Debian sid"):
        apt_mirror("sid", legacy)


def test_kernelspec_names_the_provisioner_and_message_interrupts(tmp_path: Path) -> None:
    write_kernelspec(
        tmp_path,
        "k",
        ["python", "-f", "{connection_file}"],
        "codeflow-bwrap",
        {"memory_limit": "512m"},
        "K",
    )
    spec = json.loads((tmp_path / "k" / "kernel.json").read_text())
    assert spec["interrupt_mode"] == "message"
    assert spec["metadata"]["kernel_provisioner"] == {
        "provisioner_name": "codeflow-bwrap",
        "config": {"memory_limit": "512m"},
    }


def test_dockerfile_installs_from_local_wheels_only() -> None:
    text = dockerfile("codeflow-rootfs:bookworm", ["ipykernel", "numpy"])
    assert "--no-index" in text and "--find-links /tmp/wheels" in text
    assert text.startswith("FROM codeflow-rootfs:bookworm")
