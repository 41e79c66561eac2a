"""``python -m client`` in a subprocess against a real server: files on disk, exit codes, messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DAE_SERVICE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "client", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_reconstruct_writes_images_and_arrays(client_server: Any, digit_files: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "rec"
    r = cli("reconstruct", digit_files[0], digit_files[1], "--out", out, "--url", client_server.url)
    assert r.returncode == 0, r.stderr
    for p in digit_files[:2]:
        for name in ("texture", "reconstruction", "warped_grid", "flow"):
            with Image.open(out / f"{p.stem}_{name}.png") as img:
                assert img.size == ((32, 32) if name in ("texture", "reconstruction") else (128, 128))
        with np.load(out / f"{p.stem}.npz") as z:
            assert z["reconstruction"].shape == (1, 32, 32) and z["grid"].shape == (2, 32, 32)
    assert f"wrote {out / (digit_files[0].stem + '_texture.png')}" in r.stderr


def test_encode_decode_swap_interpolate(client_server: Any, digit_files: list[Path], tmp_path: Path) -> None:
    url = ("--url", client_server.url)
    enc = cli("encode", digit_files[2], digit_files[3], "--out", tmp_path / "enc", *url)
    assert enc.returncode == 0, enc.stderr
    lines = [json.loads(line) for line in enc.stdout.splitlines()]
    assert [line["source"] for line in lines] == [str(digit_files[2]), str(digit_files[3])]
    assert json.loads((tmp_path / "enc" / "encode.json").read_text()) == lines
    code_a, code_b = lines[0]["code"], lines[1]["code"]

    dec = cli("decode", code_a, "--out", tmp_path / "dec", "--outputs", "texture,reconstruction", "--class", "3", *url)
    assert dec.returncode == 0, dec.stderr
    assert sorted(p.name for p in (tmp_path / "dec").iterdir()) == [
        "decoded_0.npz",
        "decoded_0_reconstruction.png",
        "decoded_0_texture.png",
    ]

    swp = cli("swap", digit_files[2], digit_files[3], "--out", tmp_path / "swap", *url)
    assert swp.returncode == 0, swp.stderr
    assert (tmp_path / "swap" / f"swap_{digit_files[2].stem}_{digit_files[3].stem}_reconstruction.png").is_file()

    # one end an image file, the other a code
    itp = cli(
        "interpolate", digit_files[2], code_b, "--steps", "4", "--factor", "appearance", "--out", tmp_path / "itp", *url
    )
    assert itp.returncode == 0, itp.stderr
    frames = sorted((tmp_path / "itp").glob("frame_*_reconstruction.png"))
    assert [p.name for p in frames] == [f"frame_{k:02d}_reconstruction.png" for k in range(4)]
    with Image.open(tmp_path / "itp" / "interpolation.gif") as gif:
        assert gif.n_frames == 4  # type: ignore[attr-defined]
    with np.load(tmp_path / "itp" / "frame_00.npz") as z0, np.load(tmp_path / "dec" / "decoded_0.npz") as d:
        assert z0["reconstruction"].shape == d["reconstruction"].shape


def test_failures_exit_with_a_clear_message(client_server: Any, digit_files: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    refused = cli("reconstruct", bad, "--out", tmp_path / "x", "--url", client_server.url)
    assert refused.returncode == 1
    assert "the service refused: image_undecodable" in refused.stderr and "HTTP 400" in refused.stderr

    missing = cli("reconstruct", tmp_path / "nope.png", "--out", tmp_path / "x", "--url", client_server.url)
    assert missing.returncode == 2 and "no such image file" in missing.stderr

    no_out = cli("swap", digit_files[0], digit_files[1], "--url", client_server.url)
    assert no_out.returncode == 2 and "--out DIR is required" in no_out.stderr

    down = cli("encode", digit_files[0], "--url", "http://127.0.0.1:9", "--retries", "1")
    assert down.returncode == 3 and "cannot reach http://127.0.0.1:9" in down.stderr
    assert "Traceback" not in refused.stderr + missing.stderr + no_out.stderr + down.stderr
