"""Helpers for the Karlo API tests."""

T2I = "/v2/inference/karlo/t2i"


def post_base64(karlo, path: str, wire: dict) -> dict:
    """POST ``wire`` asking for base64 PNGs; assert 200 and return the response body."""
    r = karlo({**wire, "return_type": "base64_string", "image_format": "png"}, path=path)
    assert r.status_code == 200, r.text
    return r.json()


def small(**fields):
    """A valid, fast v2.0 body (the tiny SD model at the smallest Karlo size and steps)."""
    body = {"version": "v2.0", "prompt": "a cat", "width": 384, "height": 384, "num_inference_steps": 10}
    body.update(fields)
    return body


def job_count(client) -> int:
    from sqlalchemy import func, select

    from pixelserve.db.models import Job

    with client.app.state.sessions() as s:
        return s.scalar(select(func.count()).select_from(Job))
