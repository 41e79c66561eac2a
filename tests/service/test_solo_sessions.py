"""Small batches on CPU run on one-thread sessions (``DAE_SOLO_MAX_BATCH``), bigger ones on the intra-op-threaded
sessions, with the same outputs; the real default bundle, real onnxruntime sessions, the real app."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.runtime import Runtime
from tests.service.service_helpers import files, npz

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "mnist"


def test_batches_up_to_the_limit_run_on_one_thread_sessions() -> None:
    rt = Runtime.load(Settings(bundle=BUNDLE, intra_op_threads=2, solo_max_batch=2, warmup=False))
    # The fused decoder is loaded in place of the split graphs (they would never run): two graphs, each with a second.
    assert set(rt.sessions) == set(rt.solo) == {"encoder", "decoder"} and rt.fused
    for key in rt.solo:
        assert rt.solo[key].get_session_options().intra_op_num_threads == 1
        assert rt.sessions[key].get_session_options().intra_op_num_threads == 2
        assert rt.session_for(key, 1) is rt.solo[key] and rt.session_for(key, 2) is rt.solo[key]
        assert rt.session_for(key, 3) is rt.sessions[key]
    # Same numbers on either session: a row of a batch of one equals that row of a threaded batch of three.
    rng = np.random.default_rng(0)
    images = rng.random((3, 1, 32, 32), dtype=np.float32)
    one = rt.run("encoder", {"image": images[:1]})
    three = rt.run("encoder", {"image": images})
    assert set(one) == set(three)
    for name in one:
        np.testing.assert_allclose(one[name][0], three[name][0], atol=1e-5, err_msg=name)


def test_without_the_fused_decoder_every_split_graph_gets_one() -> None:
    rt = Runtime.load(Settings(bundle=BUNDLE, intra_op_threads=2, fused_decoder=False, warmup=False))
    assert not rt.fused and set(rt.solo) == set(rt.sessions) == {"encoder", "texture", "deformation", "warp"}


def test_no_solo_sessions_with_one_thread_or_when_turned_off() -> None:
    for settings in (Settings(bundle=BUNDLE, intra_op_threads=1), Settings(bundle=BUNDLE, solo_max_batch=0)):
        rt = Runtime.load(settings.model_copy(update={"warmup": False}))
        assert rt.solo == {} and rt.solo_max_batch == 0
        assert all(rt.session_for(k, 1) is s for k, s in rt.sessions.items())


def test_a_lone_request_answers_as_a_threaded_batch_does(digit: bytes) -> None:
    answers = []
    for solo in (1, 0):
        s = Settings(bundle=BUNDLE, intra_op_threads=2, solo_max_batch=solo, log_json=False)
        with TestClient(create_app(s)) as c:
            r = c.post("/reconstruct?format=npz&outputs=all", files=files(digit))
            assert r.status_code == 200, r.text
            answers.append(npz(r.content))
    assert set(answers[0]) == set(answers[1])
    for name in answers[0]:
        np.testing.assert_allclose(answers[0][name], answers[1][name], atol=1e-5, err_msg=name)
