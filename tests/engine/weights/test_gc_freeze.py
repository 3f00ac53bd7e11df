"""engine/weights/gc_freeze.py: the ready engine freezes the process's long-lived objects out of the garbage
collector's full passes, and whatever it drops later is still reclaimed in full."""

import asyncio
import gc
import weakref

from pixelserve.core.request import GenerationRequest
from pixelserve.engine.weights import gc_freeze
from tests.engine.helpers import started


class Node:
    """A reference cycle: only the cyclic collector can free it."""

    def __init__(self):
        self.me = self


def test_collect_all_reclaims_a_cycle_frozen_before_it_became_garbage():
    node = Node()
    alive = weakref.ref(node)
    try:
        assert gc_freeze.freeze() > 0
        del node
        gc.collect()
        assert alive() is not None  # what the freeze costs: a plain collection no longer reaches it
        gc_freeze.collect_all()
        assert alive() is None
        assert gc.get_freeze_count() > 0  # the survivors are frozen again
    finally:
        gc.unfreeze()


def test_collect_all_without_a_freeze_is_a_plain_full_collection():
    gc.unfreeze()
    node = Node()
    alive = weakref.ref(node)
    del node
    gc_freeze.collect_all()
    assert alive() is None and gc.get_freeze_count() == 0


def test_a_ready_engine_freezes_and_its_stop_unfreezes(tiny_cache):
    async def go():
        engine = await started(tiny_cache, gc_freeze=True)
        try:
            frozen = gc.get_freeze_count()
            # Objects of the loaded models are in the permanent generation: gen 0-2 no longer list them.
            unet = engine.registry.get("tiny-sd", "cpu").pipe.unet
            tracked = {id(o) for o in gc.get_objects()}
            result = await engine.submit("j", GenerationRequest(model="tiny-sd", prompt="a cat", width=64, height=64,
                                                                steps=2, seeds=(1,)))
        finally:
            await engine.stop()
        return frozen, id(unet) in tracked, result

    frozen, unet_tracked, result = asyncio.run(go())
    assert frozen > 1000 and not unet_tracked
    assert len(result.images) == 1  # jobs run as before
    assert gc.get_freeze_count() == 0  # stopped: nothing stays frozen


def test_a_model_dropped_after_the_freeze_is_reclaimed_even_inside_a_cycle(tiny_cache):
    async def go():
        engine = await started(tiny_cache, gc_freeze=True)
        try:
            model = engine.registry.get("tiny-sd", "cpu")
            model.state["cycle"] = model  # frozen at ready, so a plain gc.collect() would never free it
            unet = weakref.ref(model.pipe.unet)
            del model
            assert gc.get_freeze_count() > 0
            engine.registry.unload("tiny-sd", "cpu")
            return unet() is None, gc.get_freeze_count() > 0
        finally:
            await engine.stop()

    reclaimed, still_frozen = asyncio.run(go())
    assert reclaimed and still_frozen


def test_the_api_process_freezes_itself_when_the_pipelines_run_elsewhere(tmp_path, tiny_cache):
    """PIXELSERVE_ENGINE=process or ray: no engine in the API process freezes it, so the app does,
    and gives everything back to the collector at shutdown. A local engine's server leaves it to the
    engine (tested above)."""
    from fastapi.testclient import TestClient

    from pixelserve.app import create_app
    from tests.conftest import make_settings
    from tests.security.test_fuzz import InstantEngine

    gc.unfreeze()
    for engine, expect_frozen in (("process", True), ("local", False)):
        settings = make_settings(tmp_path / engine, tiny_cache, engine=engine, gc_freeze=True)
        with TestClient(create_app(settings, engine=InstantEngine())) as client:
            assert client.get("/health/live").status_code == 200
            assert (gc.get_freeze_count() > 0) is expect_frozen
        assert gc.get_freeze_count() == 0
