"""Requests a hostile or careless client sends (issue 23, items 2, 5 and 10): the server on CPU
as in test_server_ray (Ray started once for this module), talked to over HTTP."""

import hashlib
import threading

import numpy as np
import pytest
from PIL import Image

from tests.server.test_server_ray import _png, _raw, _request, _wire, server  # noqa: F401 (the fixture)

pytestmark = pytest.mark.server


@pytest.mark.parametrize("vae", ["/etc/passwd", "/opt/models/vae.safetensors", "vae.safetensors",
                                 "models/vae.safetensors", "~/vae", "C:\\models\\vae"])
def test_a_vae_naming_a_file_on_the_server_is_400_and_never_loaded(server, vae):  # noqa: F811
    response = _raw(server, "POST", "/v1/sets", json={**_wire(_request(1)), "vae": vae})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == (f"vae names a path ({vae}); a request cannot name files on "
                                        "the server")


@pytest.mark.parametrize("body, words", [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"version": 1, "model": "tiny", "seed": ' + b"9" * 5000 + b"}", "digits"),
])
def test_deeply_nested_json_or_a_huge_number_is_400_with_the_json_error(server, body, words):  # noqa: F811
    response = _raw(server, "POST", "/v1/sets", content=body)
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert message.startswith("the request is not valid JSON") and words in message, message
    assert "\n" not in message


def test_concurrent_uploads_of_the_same_picture_all_succeed(server):  # noqa: F811
    rng = np.random.default_rng(23)
    data = _png(Image.fromarray(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)))
    sha = hashlib.sha256(data).hexdigest()
    codes: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(5):
            code = _raw(server, "PUT", f"/v1/pictures/{sha}", content=data).status_code
            with lock:
                codes.append(code)

    threads = [threading.Thread(target=client) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert codes == [201] * 100
    assert _raw(server, "HEAD", f"/v1/pictures/{sha}").status_code == 200


def test_ray_serves_own_routes_answer_without_the_token_and_say_only_that_it_runs(server):  # noqa: F811
    """Issue 23, item 14: /-/healthz and /-/routes are Ray Serve's proxy's, before our token
    check; docs/server.md says so, and they tell nothing but that the server runs."""
    from pathlib import Path

    from stylealigned_desktop.server.launch import APP_NAME

    health = _raw(server, "GET", "/-/healthz", token=None)
    routes = _raw(server, "GET", "/-/routes", token=None)
    assert (health.status_code, routes.status_code) == (200, 200)
    assert routes.json() == {"/": APP_NAME}
    assert _raw(server, "GET", "/v1/models", token=None).status_code == 401
    doc = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text(encoding="utf-8")
    assert "`GET /-/healthz`" in doc and "`GET /-/routes`" in doc and "no token" in doc
    assert f'`{{"/": "{APP_NAME}"}}`' in doc
