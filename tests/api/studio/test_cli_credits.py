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
    r = runner.invoke(cli, ["credits", "grant", "3", "-35", "--bucket", "default"])  # as the help says
    assert r.exit_code == 0, r.output
    assert "default 15, daily 7, monthly 0" in r.stdout
    shown = runner.invoke(cli, ["credits", "show", "3"]).stdout
    assert "key 3: default 15, daily 7, monthly 0" in shown
    assert "grant" in shown and "bought 50" in shown and "reset" in shown and "default -35" in shown


def test_grant_refuses_over_removal_and_zero_and_writes_no_row(data_dir):
    runner.invoke(cli, ["credits", "grant", "3", "5", "--bucket", "daily"])  # daily 7 + 5
    before = runner.invoke(cli, ["credits", "show", "3"]).stdout
    r = runner.invoke(cli, ["credits", "grant", "3", "-35", "--bucket", "daily"])
    assert r.exit_code == 1 and "cannot remove 35 daily credits: the balance is 12" in r.output
    r = runner.invoke(cli, ["credits", "grant", "3", "0"])
    assert r.exit_code == 1 and "must not be 0" in r.output
    assert runner.invoke(cli, ["credits", "show", "3"]).stdout == before  # no "+0" row, nothing moved


def test_grant_refuses_unknown_bucket(data_dir):
    r = runner.invoke(cli, ["credits", "grant", "3", "5", "--bucket", "weekly"])
    assert r.exit_code == 2
