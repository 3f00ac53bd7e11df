"""pixelserve assets list | add | remove (the admin side of the asset library)."""

import pickle

from typer.testing import CliRunner

from pixelserve.cli import cli
from pixelserve.engine.demo import tiny_adapters

runner = CliRunner()


def test_list_shows_the_public_assets_of_the_doc_samples(data_dir):
    out = runner.invoke(cli, ["assets", "list"]).stdout
    assert "octoai:canny_sdxl\tcontrolnet\tsdxl\tready" in out and "octoai:canny_sd15\tcontrolnet\tsd\tready" in out
    assert "octoai:RealVisXL\tcheckpoint\tsdxl\tready" in out and "model tiny-sdxl" in out


def test_add_public_and_private_then_remove(data_dir, tmp_path):
    lora = tiny_adapters.ensure_tiny_lora("sd", tmp_path / "files")
    r = runner.invoke(cli, ["assets", "add", str(lora), "--name", "crayon", "--type", "lora", "--engine", "sd",
                            "--public", "--trigger-word", "crayons"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("octoai:crayon\tready\tasset_")
    r = runner.invoke(cli, ["assets", "add", str(lora), "--name", "mine", "--type", "lora", "--engine", "sd",
                            "--owner", "3"])
    assert r.exit_code == 0 and r.stdout.startswith("key:3/mine\tready")
    listed = runner.invoke(cli, ["assets", "list"]).stdout
    assert "octoai:crayon\tlora\tsd\tready" in listed and "key:3/mine\tlora" in listed
    assert runner.invoke(cli, ["assets", "remove", "octoai:crayon"]).exit_code == 0
    assert "octoai:crayon" not in runner.invoke(cli, ["assets", "list"]).stdout
    assert list((data_dir / "assets").glob("*.safetensors")) and len(list((data_dir / "assets").iterdir())) == 1


def test_add_refuses_pickles_wrong_families_and_bad_options(data_dir, tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(pickle.dumps({"a": 1}))
    r = runner.invoke(cli, ["assets", "add", str(bad), "--name", "x", "--type", "lora", "--engine", "sd", "--public"])
    assert r.exit_code == 1 and "rejected" in r.stdout and "safetensors" in r.stdout
    xl = tiny_adapters.ensure_tiny_lora("sdxl", tmp_path / "files")
    r = runner.invoke(cli, ["assets", "add", str(xl), "--name", "y", "--type", "lora", "--engine", "sd", "--public"])
    assert r.exit_code == 1 and "rejected" in r.stdout
    r = runner.invoke(cli, ["assets", "add", str(xl), "--name", "../y", "--type", "lora", "--engine", "sdxl",
                            "--public"])
    assert r.exit_code == 2
    r = runner.invoke(cli, ["assets", "add", str(xl), "--name", "z", "--type", "lora", "--engine", "sdxl"])
    assert r.exit_code == 2  # neither --public nor --owner
    assert runner.invoke(cli, ["assets", "remove", "octoai:canny_sdxl"]).exit_code == 1  # from the configuration
