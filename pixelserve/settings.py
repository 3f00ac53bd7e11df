"""Settings, read once from the environment (prefix ``PIXELSERVE_``) in ``create_app``."""

from __future__ import annotations

import base64
import ipaddress
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pixelserve.core.model_config import ModelsConfig, demo_config, load_models_config


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """``"10.0.0.1, 192.168.0.0/16"`` -> networks; raises ValueError naming a bad entry."""
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return tuple(out)


#: Placeholder secrets copied from examples; refused outside demo mode.
WEAK_SECRETS = frozenset({"changeme", "change-me", "secret", "default", "password", "pixelserve", "test"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIXELSERVE_", extra="ignore", validate_by_name=True)

    #: Holds the database, the image store, the tiny-model cache and generated secrets.
    data_dir: Path = Path("data")
    #: TOML model configuration (see core/model_config.py); unset: tiny demo models that draw noise.
    models_config: Path | None = None
    #: SQLAlchemy URL; default: SQLite in data_dir. PostgreSQL: postgresql+psycopg://user:pw@host/db
    #: (several API replicas may share it). PIXELSERVE_DB_URL is the same setting.
    database_url: str | None = Field(None, validation_alias=AliasChoices("PIXELSERVE_DATABASE_URL",
                                                                         "PIXELSERVE_DB_URL"))
    #: A Studio job's lease: a replica that stops renewing it (died) loses the job to another after this.
    job_lease_seconds: float = Field(60.0, ge=2, le=3600)
    #: Absolute base for signed image URLs (e.g. https://images.example.com); unset: the request's own.
    public_base_url: str | None = None
    url_ttl_seconds: int = Field(600, ge=1, le=7 * 24 * 3600)
    #: HMAC secret for signed URLs; unset: generated once and kept in data_dir/secrets/.
    url_signing_secret: str | None = None
    #: HMAC secret API keys are stored under; unset: generated once and kept in data_dir/secrets/.
    #: Losing or changing it invalidates every key; API replicas sharing a database need the same.
    api_key_secret: str | None = None
    auth_enabled: bool = True
    #: Failed authentications (401s) a client address, or a key prefix, may make in a burst; past
    #: them its requests are refused (429, Retry-After) before their body is read, until the bucket
    #: refills. A caller with a valid key is never refused by it (service/auth_limits.py). 0: no limit.
    auth_fail_burst: int = Field(20, ge=0)
    auth_fail_per_minute: float = Field(10.0, gt=0)  # how fast the bucket refills
    #: How long a request refused by that limit is held before its 429 (a tarpit: a flooding client
    #: that waits for each answer is slowed to one refusal per this, at no CPU cost); 0: none.
    auth_fail_delay_seconds: float = Field(1.0, ge=0, le=30)
    #: Proxies (IPs or networks, comma-separated) whose X-Forwarded-For names the client (for the
    #: limit above, and uvicorn's proxy headers); unset: the TCP peer is the client, headers ignored.
    trusted_proxies: str = ""
    devices: str = "auto"  # "auto", or a comma list like "cuda:0,cuda:1"
    #: "local": pipelines run in the API process; "process": in a supervised worker process that is
    #: restarted when it dies, its unanswered jobs handed over once (engine/runners/supervised.py).
    #: "ray": on Ray Serve deployments, on one machine or a cluster (engine/runners/ray_serve.py).
    engine: Literal["local", "process", "ray"] = "local"
    # -- Ray Serve engine (engine/runners/ray_serve.py, deploy/) ---------------------------------------
    #: Cluster to join ("auto", "ray://head:10001", "head:6379"); unset: a Ray started in-process.
    ray_address: str | None = None
    #: true: this API process deploys the Serve applications at start; false: they are deployed by
    #: `serve deploy deploy/serve.yaml` and this process only finds them.
    ray_deploy: bool = True
    ray_app_prefix: str = "pixelserve"  # application "<prefix>-<group>"
    #: Models sharing a deployment (group name -> model ids); a model left out is a group of its own.
    ray_model_groups: dict[str, list[str]] = {}
    ray_num_gpus: float = Field(0, ge=0)  # per replica; 1 on GPU machines
    ray_num_cpus: float = Field(1, ge=0)
    ray_min_replicas: int = Field(1, ge=1)
    ray_max_replicas: int = Field(1, ge=1)  # above min: autoscaling on queue length
    ray_target_ongoing_requests: float = Field(2, gt=0)  # per replica, what autoscaling aims at
    ray_upscale_delay_s: float = Field(10, ge=0)
    ray_downscale_delay_s: float = Field(300, ge=0)
    ray_max_adapter_sets: int = Field(4, ge=1)  # checkpoint/LoRA sets a replica keeps (multiplexing)
    max_queue: int = Field(64, ge=1, le=100_000)
    #: On SIGTERM: seconds running requests get to finish before the server stops anyway.
    drain_timeout_seconds: float = Field(30.0, ge=0, le=3600)
    #: A queued job that has not started this many seconds after it was queued is refused (503)
    #: instead of running after its client gave up (0: no deadline).
    start_deadline_seconds: float = Field(120.0, ge=0, le=86_400)
    #: A job not finished this many seconds after it was queued is stopped (before its next step)
    #: and answered 503 with Retry-After, never left running for a client that gave up (0: no limit).
    request_deadline_seconds: float = Field(600.0, ge=0, le=86_400)
    #: engine "process": a job in the worker that shows no progress (a denoising step, or the
    #: worker's heartbeat while it waits in the worker's queue) for this long has lost its lease:
    #: the worker is deemed hung, killed and replaced, and its jobs handed over (once).
    worker_lease_seconds: float = Field(300.0, gt=0, le=86_400)
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    # -- slow clients (serving.py; the body deadline in http/body.py) -----------------------
    #: A request's headers must be complete this long after its first byte (or its connection);
    #: else a bare 408 and the connection is closed (uvicorn itself waits forever).
    header_read_timeout_seconds: float = Field(10.0, gt=0, le=3600)
    #: A request's body must be read in full within this long; else 408 in the dialect's shape.
    body_read_timeout_seconds: float = Field(60.0, gt=0, le=86_400)
    #: An idle kept-alive connection is closed after this long (uvicorn's timeout_keep_alive).
    keep_alive_timeout_seconds: int = Field(5, ge=1, le=3600)
    #: Open connections (or running requests) past which new ones get 503 (uvicorn's
    #: limit_concurrency); 0: no limit.
    max_connections: int = Field(1000, ge=0)
    #: Largest file a signed upload URL takes into a local store (PUT /v1/uploads/...).
    # -- storage (storage/local.py, storage/s3.py) ---------------------------------------------
    #: "local": files under data_dir/images; "s3": an S3 bucket (AWS, MinIO, SeaweedFS, ...).
    store: Literal["local", "s3"] = "local"
    s3_bucket: str | None = None
    s3_prefix: str = ""  # keys are stored under this folder of the bucket
    s3_endpoint_url: str | None = None  # unset: AWS; e.g. http://seaweedfs:8333
    #: The endpoint clients reach, for pre-signed URLs (unset: s3_endpoint_url).
    s3_public_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None  # unset: boto3's own chain (env, profile, instance role)
    s3_secret_access_key: str | None = None
    s3_create_bucket: bool = False  # create the bucket at start when it does not exist
    #: Image URLs (Karlo return_type url) are pre-signed bucket URLs; false: pixelserve's own signed
    #: route serves them from the bucket (a bucket clients cannot reach).
    s3_presigned_urls: bool = True
    max_image_pixels: int = Field(4096 * 4096, ge=64 * 64)
    #: Default request quotas per API key (0: unlimited); `pixelserve keys quota` sets them per key.
    quota_per_minute: int = Field(0, ge=0)
    quota_per_day: int = Field(0, ge=0)
    quota_per_month: int = Field(0, ge=0)
    #: NSFW score at or above which an image counts as NSFW content.
    nsfw_threshold: float = Field(0.5, ge=0, le=1)
    # -- engine performance (engine/runners/batching.py, engine/speed/optimize.py) ---------------------------
    #: Images stacked into one pipeline call from compatible queued requests (1: no batching).
    max_batch_size: int = Field(8, ge=1, le=256)
    #: How long a batchable job waits for the next compatible one when the queue has none (0: never
    #: waits). Each compatible arrival restarts the wait (local engine), up to max_batch_wait_ms in all.
    max_batch_delay_ms: float = Field(10.0, ge=0, le=10_000)
    #: The longest a batch keeps gathering while compatible jobs keep arriving less than
    #: max_batch_delay_ms apart (a burst admitted one request at a time); 0: a fixed window of
    #: max_batch_delay_ms from the first job. Ray Serve's batcher has a fixed window only.
    max_batch_wait_ms: float = Field(50.0, ge=0, le=10_000)
    #: torch.compile the UNet and VAE decoder at start (slower start, faster jobs; cache kept in data_dir).
    compile: bool = False
    #: torch.compile mode: unset (default), "reduce-overhead" (CUDA graphs: for static shapes, one graph per
    #: batch size and resolution), "max-autotune" (longer first compile), "max-autotune-no-cudagraphs".
    compile_mode: Literal["reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] | None = None
    #: Decode images over this many pixels with a tiled VAE (bounded memory; 0: never tile).
    vae_tiling_pixels: int = Field(1536 * 1536, ge=0)
    #: The exact optimisations below: unset, each is on only on the devices where it measured faster
    #: (engine/speed/optimize.py DEVICE_DEFAULTS: CPU: retained host memory; CUDA: channels_last); set,
    #: it applies on every device.
    #: Fused QKV projections in UNet and VAE attention (exact; LoRA loaded later would not reach them; slower on CPU).
    fuse_qkv: bool | None = None
    #: channels_last memory format for the UNet and VAE (faster convolutions on CUDA, slower on CPU).
    channels_last: bool | None = None
    #: glibc's malloc keeps freed host memory for the next step instead of page-faulting it back
    #: (engine/weights/host_memory.py; the whole process keeps its peak memory).
    retain_host_memory: bool | None = None
    #: Loaded models kept per device, in GiB of parameters and buffers; past it the least recently
    #: used model no job holds is unloaded (0: no bound). See engine/runners/models.py.
    model_cache_gib: float = Field(0.0, ge=0)
    #: Once the engine is ready, move every object alive into a generation the garbage collector's
    #: full passes skip (gc.freeze): with models loaded, a full pass otherwise stops every thread for
    #: a long time (bench/gc_pauses.py). Dropped models are still reclaimed in full. With the process or Ray engine the
    #: API process freezes its own start-up state (app.py). See engine/weights/gc_freeze.py.
    gc_freeze: bool = True
    #: Add a W3C Server-Timing header (auth, admit, engine, store, finish, app; ms) to every answer.
    #: Off by default: it tells callers how long internal steps took. See core/timing.py.
    server_timing: bool = False
    # -- jobs: progress, previews, webhooks, metrics (http/jobs.py, service/webhooks, http/metrics.py) ------
    #: A live preview (small JPEG) every this many denoising steps of a job; 0: no previews.
    preview_every: int = Field(5, ge=0, le=1000)
    #: How long a job's events stay replayable (Last-Event-ID) after it ended.
    job_events_keep_seconds: float = Field(300.0, ge=0, le=86_400)
    #: Webhook targets may be private, loopback or link-local addresses (tests, private networks).
    webhook_allow_private: bool = False
    metrics: bool = True  # GET /metrics (Prometheus text format)
    metrics_token: str | None = None  # set: /metrics requires "Authorization: Bearer <token>"
    # -- opt-in approximations: each CHANGES THE IMAGE (engine/speed/approx.py, engine/speed/optimize.py) ---
    #: CHANGES THE IMAGE. FP8 linear layers (torchao; CUDA compute capability 8.9+; pip install 'pixelserve[fp8]').
    fp8: bool = False
    #: CHANGES THE IMAGE. DeepCache-style step caching: deep UNet features recomputed every N steps (0, 1: off).
    step_cache_interval: int = Field(0, ge=0, le=50)
    #: CHANGES THE IMAGE. Family -> local AutoencoderTiny folder (TAESD/TAESDXL) decoding instead of the full VAE.
    tiny_vae: dict[str, Path] = {}
    # -- Studio API (dialects/studio, service/credits.py) --------------------------------------
    #: Model id serving Studio; unset: the first configured sd-family model (else the first model).
    studio_model: str | None = None
    #: Credits: daily/monthly balances are reset to these amounts each day/month (studio_credit_timezone).
    studio_daily_credit: int = Field(40, ge=0)
    studio_monthly_credit: int = Field(0, ge=0)
    studio_initial_credit: int = Field(0, ge=0)  # purchased-type credits granted to a new account
    studio_credit_timezone: str = "UTC"
    #: Cost of one image by family, or by "family:ratio" (wins over the family's cost).
    studio_image_cost: dict[str, int] = {"sd": 1, "sdxl": 2, "unclip": 2}
    #: Cost of one upscale by scaleSize.
    studio_upscale_cost: dict[str, int] = {"1x": 0, "2x": 1, "4x": 2, "8x": 4}
    #: Per-family overrides of the ratio -> "WxH" table (dialects/studio/protocol.py has the defaults).
    studio_resolutions: dict[str, dict[str, str]] = {}
    studio_steps: int = Field(30, ge=1, le=150)
    studio_guidance_scale: float = Field(7.0, ge=0, le=30)
    #: img2img strength from a reference image (how far the result may move away from it).
    studio_reference_strength: float = Field(0.75, gt=0, le=1)
    #: On a model with an IP-Adapter, the reference image is an image prompt of this scale instead.
    studio_reference_scale: float = Field(0.6, ge=0, le=2)
    studio_nsfw_check: bool = True  # blur images at or over nsfw_threshold (blurReason "nsfw")
    studio_job_workers: int = Field(1, ge=1, le=64)  # async jobs run at once
    #: Local MarianMT/NLLB folder (safetensors) translating Korean prompts; unset: prompts go as sent.
    studio_translation_model: Path | None = None

    # -- OctoAI API and its asset library (dialects/octoai, service/assets.py) ---------------------
    #: Largest asset file a PUT to an upload URL may send (an SDXL checkpoint is about 7 GB).
    asset_max_bytes: int = Field(8 * 1024**3, ge=1024)
    #: "WxH,WxH": sizes accepted besides each OctoAI engine's documented resolutions (e.g. 64x64
    #: for the tiny demo models, or the sizes a fine-tuned checkpoint was trained on).
    octoai_extra_sizes: str = ""

    @field_validator("octoai_extra_sizes")
    @classmethod
    def _extra_sizes(cls, v: str) -> str:
        for size in filter(None, (x.strip() for x in v.split(","))):
            w, _, h = size.partition("x")
            if not (w.isdigit() and h.isdigit() and int(w) % 8 == 0 and int(h) % 8 == 0 and 64 <= int(w) <= 4096
                    and 64 <= int(h) <= 4096):
                raise ValueError(f"{size!r} must be 'WxH' with multiples of 8 from 64 to 4096")
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: str) -> str:
        parse_networks(v)
        return v

    @field_validator("studio_credit_timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)
        except Exception:
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("studio_image_cost", "studio_upscale_cost")
    @classmethod
    def _costs(cls, v: dict[str, int]) -> dict[str, int]:
        if any(c < 0 for c in v.values()):
            raise ValueError("costs must be 0 or more")
        return v

    @field_validator("studio_resolutions")
    @classmethod
    def _sizes(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for table in v.values():
            for ratio, size in table.items():
                w, _, h = size.partition("x")
                if not (w.isdigit() and h.isdigit() and int(w) % 8 == 0 and int(h) % 8 == 0 and int(w) >= 64
                        and int(h) >= 64):
                    raise ValueError(f"{ratio}: {size!r} must be 'WxH' with multiples of 8, at least 64")
        return v

    @model_validator(mode="after")
    def _real_secrets_outside_demo(self) -> "Settings":
        """With real models configured, a configured secret must be a real one.

        Unset is fine (a random one is generated and kept in data_dir/secrets); an empty, short or
        placeholder value is refused at start: anyone who guesses the signing secret can mint image
        URLs, and the API-key secret is what keeps a copied database from confirming a guessed key.
        """
        if self.models_config is None:
            return self
        for name in ("url_signing_secret", "api_key_secret"):
            secret = getattr(self, name)
            if secret is not None and (len(secret) < 32 or secret.lower() in WEAK_SECRETS or len(set(secret)) < 8):
                raise ValueError(f"{name} must be at least 32 random characters (or unset, to have one "
                                 "generated); refusing to start with an empty, short or placeholder secret")
        return self

    @field_validator("tiny_vae")
    @classmethod
    def _tiny_vae(cls, v: dict[str, Path]) -> dict[str, Path]:
        for family, path in v.items():
            if family not in ("sd", "sdxl"):
                raise ValueError(f"tiny_vae: {family!r} is not a family with an AutoencoderTiny (sd, sdxl)")
            if not (Path(path) / "config.json").is_file():
                raise ValueError(f"tiny_vae.{family}: {path} is not a diffusers AutoencoderTiny folder")
        return v

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> "Settings":
        if self.store == "s3" and not self.s3_bucket:
            raise ValueError("store=s3 needs s3_bucket (PIXELSERVE_S3_BUCKET)")
        return self

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError("public_base_url must start with http:// or https://")
        return v.rstrip("/")

    # -- derived -----------------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'pixelserve.db'}"

    @property
    def image_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def asset_dir(self) -> Path:
        return self.data_dir / "assets"

    @property
    def trusted_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def octoai_sizes(self) -> tuple[tuple[int, int], ...]:
        pairs = (x.strip().partition("x") for x in self.octoai_extra_sizes.split(",") if x.strip())
        return tuple((int(w), int(h)) for w, _, h in pairs)

    def pipeline_options(self) -> dict:
        """How each engine (local, worker process, every Ray replica) optimises its pipelines."""
        return dict(compile=self.compile, compile_mode=self.compile_mode, vae_tiling_pixels=self.vae_tiling_pixels,
                    fuse_qkv=self.fuse_qkv, channels_last=self.channels_last,
                    retain_host_memory=self.retain_host_memory, model_cache_gib=self.model_cache_gib, fp8=self.fp8,
                    step_cache_interval=self.step_cache_interval, tiny_vae=self.tiny_vae, gc_freeze=self.gc_freeze,
                    preview_every=self.preview_every)

    def quota_limits(self):
        from pixelserve.db.crud.quotas import QuotaLimits

        return QuotaLimits(self.quota_per_minute, self.quota_per_day, self.quota_per_month)

    @cached_property
    def models(self) -> ModelsConfig:
        return load_models_config(self.models_config) if self.models_config else demo_config(self.cache_dir)

    def signing_secret(self) -> bytes:
        """The URL-signing secret: configured, or generated on first start and kept."""
        return self._kept_secret(self.url_signing_secret, "url_signing.key")

    def api_key_hmac_secret(self) -> bytes:
        """The secret API keys are hashed under (db/crud/keys.py): configured, or generated once and kept."""
        return self._kept_secret(self.api_key_secret, "api_keys.key")

    def webhook_keyless_secret(self) -> str:
        """Signs the webhooks of jobs made without an API key (auth disabled): generated once and kept."""
        return "whsec_" + base64.b64encode(self._kept_secret(None, "webhooks.key")).decode()

    def _kept_secret(self, configured: str | None, name: str) -> bytes:
        if configured:
            return configured.encode()
        path = self.data_dir / "secrets" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")  # two first starts at once: one wins
            tmp.write_text(secrets.token_urlsafe(48))
            tmp.chmod(0o600)
            try:
                path.hardlink_to(tmp)  # never replaces a secret another process just wrote
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                tmp.replace(path)
            tmp.unlink(missing_ok=True)
        return path.read_text().strip().encode()
