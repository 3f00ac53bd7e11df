"""pixelserve credits grant | show."""

import pytest
from typer.testing import CliRunner

from pixelserve.cli import cli

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELSERVE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PIXELSERVE_STUDIO_DAILY_CREDIT", "7")
    return tmp_path


def test_grant_and_show(data_dir):
    r = runner.invoke(cli, ["credits", "grant", "3", "50", "--note", "bought 50"])
    assert r.exit_code == 0, r.output
    assert "default 50, daily 7, monthly 0" in r.stdout
    r = runner.invoke(cli, ["credits", "grant", "--bucket", "default", "--", "3", "-80"])
    assert r.exit_code == 0 and "default 0," in r.stdout  # never below zero
    shown = runner.invoke(cli, ["credits", "show", "3"]).stdout
    assert "key 3: default 0, daily 7, monthly 0" in shown
    assert "grant" in shown and "bought 50" in shown and "reset" in shown


def test_grant_refuses_unknown_bucket(data_dir):
    r = runner.invoke(cli, ["credits", "grant", "3", "5", "--bucket", "weekly"])
    assert r.exit_code == 2
