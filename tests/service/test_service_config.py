"""Settings: one DAE_ prefix, documented defaults, a default bundle resolved from the package, not the CWD."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.app import ServiceApp, create_app
from service.config import DEFAULT_BUNDLE, Settings
from service.middleware import RequestContext

REPO = Path(__file__).resolve().parents[2]


def test_defaults_and_the_default_bundle_is_package_relative(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("DAE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # somewhere else entirely
    s = Settings()
    assert s.bundle == DEFAULT_BUNDLE == REPO / "models" / "mnist"
    assert (s.host, s.port, s.require_cuda) == ("127.0.0.1", 8000, False)
    assert s.provider_list == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setenv("DAE_BUNDLE", "models/mnist")  # what `make run` passes, relative
    assert Settings().bundle == REPO / "models" / "mnist"


def test_environment_overrides_with_the_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DAE_PORT", "9123")
    monkeypatch.setenv("DAE_MAX_BATCH", "7")
    monkeypatch.setenv("DAE_REQUIRE_CUDA", "true")
    monkeypatch.setenv("DAE_BUNDLE", str(tmp_path))
    monkeypatch.setenv("DAE_AUTH_TOKEN", "s3cret")
    s = Settings()
    assert (s.port, s.max_batch, s.require_cuda, s.bundle) == (9123, 7, True, tmp_path)
    assert s.auth_token is not None and s.auth_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)


@pytest.mark.parametrize(
    "env",
    [
        {"DAE_PORT": "nope"},
        {"DAE_MAX_BATCH": "0"},
        {"DAE_QUEUE_SIZE": "4", "DAE_MAX_IMAGES_PER_REQUEST": "8"},
        {"DAE_MAX_PIXELS": "999999999"},
        {"DAE_PROVIDERS": " , "},
        {"DAE_WORKERS": "0"},
    ],
)
def test_incoherent_settings_are_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValidationError):
        Settings()


def test_workers_share_the_cores_out_unless_threads_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert [Settings(workers=n).threads for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    assert Settings(workers=4, intra_op_threads=3).threads == 3


def test_workers_share_the_admission_limit_and_the_refusal_rate_out() -> None:
    one, three = Settings(max_inflight=128, refusal_rate=900), Settings(max_inflight=128, refusal_rate=900, workers=3)
    assert (one.worker_inflight, one.worker_refusal_rate) == (128, 900)
    assert (three.worker_inflight, three.worker_refusal_rate) == (43, 300)  # 3 x 43 >= 128: none refused early
    app = create_app(Settings(max_inflight=5, refusal_rate=100, workers=2))  # what each worker's app applies
    assert isinstance(app, ServiceApp)
    front = app.front
    assert isinstance(front, RequestContext)
    assert front.max_inflight == 3 and front.pacer.interval == pytest.approx(1 / 50)
