from pixelserve.settings import Settings


def test_signing_secret_is_generated_once_and_kept(tmp_path):
    a = Settings(data_dir=tmp_path).signing_secret()
    b = Settings(data_dir=tmp_path).signing_secret()
    assert a == b and len(a) >= 32
    assert (tmp_path / "secrets" / "url_signing.key").stat().st_mode & 0o077 == 0
    assert Settings(data_dir=tmp_path / "other").signing_secret() != a


def test_configured_secret_wins(tmp_path):
    assert Settings(data_dir=tmp_path, url_signing_secret="s3cret").signing_secret() == b"s3cret"


def test_env_prefix(monkeypatch, tmp_path):
    monkeypatch.setenv("PIXELSERVE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PIXELSERVE_AUTH_ENABLED", "false")
    s = Settings()
    assert s.data_dir == tmp_path.resolve() and s.auth_enabled is False
    assert s.db_url == f"sqlite:///{tmp_path.resolve() / 'pixelserve.db'}"


def test_weak_signing_secrets_are_refused_outside_demo_mode(tmp_path):
    import pytest
    from pydantic import ValidationError

    config = tmp_path / "models.toml"
    config.write_text("")  # the file's content is read later; its presence means "not demo mode"
    for weak in ("", "changeme", "s3cret", "a" * 40):
        with pytest.raises(ValidationError, match="url_signing_secret"):
            Settings(data_dir=tmp_path, models_config=config, url_signing_secret=weak)
    strong = "Zq8#kP2v!mL9xR4t@wN7cY1b$hJ6dF3g"
    assert Settings(data_dir=tmp_path, models_config=config, url_signing_secret=strong).signing_secret() == strong.encode()
    assert Settings(data_dir=tmp_path, models_config=config).signing_secret()  # unset: generated
    assert Settings(data_dir=tmp_path, url_signing_secret="s3cret").signing_secret() == b"s3cret"  # demo mode


def test_db_url_is_an_alias_of_database_url(monkeypatch, tmp_path):
    monkeypatch.setenv("PIXELSERVE_DB_URL", "postgresql+psycopg://ps@db.internal/pixelserve")
    assert Settings(data_dir=tmp_path).db_url == "postgresql+psycopg://ps@db.internal/pixelserve"
    monkeypatch.setenv("PIXELSERVE_DATABASE_URL", "postgresql+psycopg://ps@other/pixelserve")
    assert Settings(data_dir=tmp_path).db_url == "postgresql+psycopg://ps@other/pixelserve"  # the long name wins
    monkeypatch.delenv("PIXELSERVE_DB_URL")
    monkeypatch.delenv("PIXELSERVE_DATABASE_URL")
    monkeypatch.setenv("DATABASE_URL", "postgresql://someone-elses/db")  # no prefix: not ours
    assert Settings(data_dir=tmp_path).db_url.startswith("sqlite:///")
    assert Settings(data_dir=tmp_path, database_url="sqlite:///x.db").db_url == "sqlite:///x.db"


def test_batching_settings_reach_the_local_engine(monkeypatch, tmp_path):
    from pixelserve.app import build_engine

    monkeypatch.setenv("PIXELSERVE_MAX_BATCH_DELAY_MS", "12")
    monkeypatch.setenv("PIXELSERVE_MAX_BATCH_WAIT_MS", "75")
    engine = build_engine(Settings(data_dir=tmp_path))
    assert (engine.max_batch_delay_s, engine.max_batch_wait_s) == (0.012, 0.075)


def test_gc_freeze_is_on_by_default_and_reaches_every_engine(monkeypatch, tmp_path):
    from pixelserve.app import build_engine

    monkeypatch.delenv("PIXELSERVE_GC_FREEZE", raising=False)  # tests/conftest.py turns it off for the suite
    settings = Settings(data_dir=tmp_path)
    assert settings.gc_freeze is True and build_engine(settings).gc_freeze is True
    assert settings.pipeline_options()["gc_freeze"] is True  # the process worker and Ray replicas get these
    monkeypatch.setenv("PIXELSERVE_GC_FREEZE", "false")
    assert build_engine(Settings(data_dir=tmp_path)).gc_freeze is False


def test_exact_optimisations_unset_take_the_device_defaults(monkeypatch, tmp_path):
    from pixelserve.app import build_engine

    names = ("CHANNELS_LAST", "FUSE_QKV", "RETAIN_HOST_MEMORY")
    for name in names:
        monkeypatch.delenv(f"PIXELSERVE_{name}", raising=False)
    options = Settings(data_dir=tmp_path).pipeline_options()  # the process worker and Ray replicas get these
    assert [options[n.lower()] for n in names] == [None, None, None]
    opts = build_engine(Settings(data_dir=tmp_path)).optimizations
    assert opts.on("retain_host_memory", "cpu") and not opts.on("channels_last", "cpu")
    monkeypatch.setenv("PIXELSERVE_CHANNELS_LAST", "true")
    monkeypatch.setenv("PIXELSERVE_RETAIN_HOST_MEMORY", "false")
    opts = build_engine(Settings(data_dir=tmp_path)).optimizations
    assert opts.on("channels_last", "cpu") and not opts.on("retain_host_memory", "cpu")
