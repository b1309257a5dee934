"""The systemd units of docs/systemd: what docs/network.md promises, with options ser-edge has."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ser_edge.cli import app

UNITS = Path(__file__).resolve().parent.parent / "docs" / "systemd"
runner = CliRunner()


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read(UNITS / name)
    return parser


@pytest.mark.parametrize(("name", "command"), [("ser-edge-listen.service", "listen"),
                                               ("ser-edge-serve.service", "serve")])
def test_unit(name: str, command: str) -> None:
    u = unit(name)
    service = u["Service"]
    assert service["User"] not in ("root", "0")  # an unprivileged user
    assert service["Restart"] == "on-failure" and u["Unit"]["StartLimitIntervalSec"] == "0"
    assert service.get("StandardOutput", "journal") == "journal"  # the default: the journal
    assert u["Install"]["WantedBy"] == "multi-user.target"  # at boot
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/bin/ser-edge") and argv[1] == command
    # Every option the unit gives is one the command has (a rename would break the service).
    help_text = runner.invoke(app, [command, "--help"], terminal_width=200).stdout
    for arg in argv[2:]:
        if arg.startswith("--"):
            assert f" {arg}" in help_text, f"{name}: {arg} is not an option of {command}"
    if command == "listen":
        assert "audio" in service["SupplementaryGroups"].split()  # the microphone
        assert "--mqtt" in argv and "--ha-discovery" in argv
        assert not any("PASSWORD" in a or "@" in a for a in argv)  # credentials not in argv
        assert service["EnvironmentFile"].startswith("/etc/")
    else:
        assert argv[argv.index("--host") + 1] == "127.0.0.1"
