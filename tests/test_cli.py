"""The command line: keys, models, one-shot generate."""

from PIL import Image
from typer.testing import CliRunner

from pixelserve.cli import cli

runner = CliRunner()


def test_keys_create_list_revoke(data_dir):
    r = runner.invoke(cli, ["keys", "create", "--name", "alice"])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[-1]
    assert key.startswith("ps_") and len(key) > 40 and " " not in key
    # Hashed under the data dir's generated secret, the one the server reads (no scrypt to pay on first use).
    from pixelserve.db.session import open_database
    from pixelserve.service.auth import Authenticator
    from pixelserve.settings import Settings

    settings = Settings(data_dir=data_dir)
    sessions = open_database(settings.db_url)
    assert Authenticator(sessions, secret=settings.api_key_hmac_secret()).check(key).name == "alice"
    sessions.kw["bind"].dispose()
    listed = runner.invoke(cli, ["keys", "list"]).stdout
    assert "alice" in listed and "active" in listed and key not in listed
    assert runner.invoke(cli, ["keys", "revoke", "1"]).exit_code == 0
    assert "revoked" in runner.invoke(cli, ["keys", "list"]).stdout
    assert runner.invoke(cli, ["keys", "revoke", "1"]).exit_code == 1


def test_models_list_shows_demo_models(data_dir):
    out = runner.invoke(cli, ["models", "list"]).stdout
    assert "tiny-sd\tsd" in out and "tiny-sdxl\tsdxl" in out and "karlo v2.1" in out and "noise" in out


def test_generate_writes_images(data_dir, tmp_path):
    out = tmp_path / "out"
    r = runner.invoke(cli, ["generate", "a cat", "--model", "tiny-sdxl", "--width", "64", "--height", "64",
                            "--steps", "2", "-n", "2", "--seed", "5", "--seed", "6", "--out", str(out)])
    assert r.exit_code == 0, r.output
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["tiny-sdxl-5.png", "tiny-sdxl-6.png"]
    assert all(Image.open(f).size == (64, 64) for f in files)


def test_generate_rejects_bad_input_with_exit_2(data_dir, tmp_path):
    r = runner.invoke(cli, ["generate", "a cat", "--model", "tiny-sd", "--width", "65", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "width" in r.output


def test_keys_quota(data_dir):
    runner.invoke(cli, ["keys", "create", "--name", "q"])
    r = runner.invoke(cli, ["keys", "quota", "1", "--per-minute", "3", "--per-day", "0"])
    assert r.exit_code == 0, r.output
    assert "per minute 3, per day unlimited, per month default" in r.stdout
    assert runner.invoke(cli, ["keys", "quota", "99", "--per-minute", "1"]).exit_code == 1
    assert runner.invoke(cli, ["keys", "quota", "1", "--per-minute", "-1"]).exit_code == 2
