"""Engine-side failures reach Karlo clients in Karlo's error shape, with a retryable status."""

import pytest
from fastapi.testclient import TestClient

from pixelserve.app import create_app
from pixelserve.core.model_config import demo_config
from pixelserve.db.crud.keys import create_key
from pixelserve.engine.client import EngineClient, EngineHealth, ModelInfo
from pixelserve.errors import EngineFailure, NotReady, Overloaded
from pixelserve.settings import Settings
from tests.api.karlo.helpers import T2I, small


class FailingEngine:
    """Any EngineClient works behind the service; this one fails every job with ``error``."""

    def __init__(self, error):
        self.error = error
        self.submitted = []

    async def start(self):
        pass

    async def stop(self):
        pass

    async def submit(self, job_id, request, on_progress=None):
        self.submitted.append(request)
        raise self.error

    def check(self, request):
        pass

    async def postprocess(self, job_id, request, image):
        raise self.error

    def cancel(self, job_id):
        return False

    def health(self):
        return EngineHealth(ready=True, devices=("fake",), queue_depth=0, queue_capacity=1, running=0)

    def models(self):
        return [ModelInfo(m.id, m.family, m.tasks, False, True, True) for m in demo_config().models.values()]


@pytest.mark.parametrize("error, status, code", [
    (Overloaded("queue full"), 503, -7),
    (NotReady("models are still loading"), 503, -7),
    (EngineFailure("out of memory on cuda:0"), 500, -1),
    (RuntimeError("a bug"), 500, -1),
])
def test_engine_errors_in_karlo_shape(tmp_path, error, status, code):
    engine = FailingEngine(error)
    assert isinstance(engine, EngineClient)
    app = create_app(Settings(data_dir=tmp_path), engine=engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        with app.state.sessions() as s:
            _, key = create_key(s, "k", app.state.auth.secret)
        r = client.post(T2I, json=small(seed=[9]), headers={"Authorization": f"KakaoAK {key}"})
        from pixelserve.db.models import Job

        with app.state.sessions() as s:
            [job] = s.query(Job).all()
    assert r.status_code == status
    assert r.json()["code"] == code and r.json()["msg"]
    assert engine.submitted[0].seeds == (9,)
    assert job.status == "failed" and job.error
