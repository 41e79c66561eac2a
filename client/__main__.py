"""Command line for the DAE service: writes what it gets back to disk.

    python -m client encode digit.png [more.png ...] [--out DIR]       # JSON lines on stdout
    python -m client reconstruct digit.png [...] --out DIR             # DIR/<stem>_<output>.png + <stem>.npz
    python -m client decode CODE [CODE ...] --out DIR [--class 3]
    python -m client swap shape.png appearance.png --out DIR
    python -m client interpolate A B --out DIR --steps 8 --factor shape   # A, B: image files or codes

Common: --url (default $DAE_SERVICE_URL or http://127.0.0.1:8000), --token (default $DAE_AUTH_TOKEN),
--timeout SECONDS, --retries N, --outputs texture,reconstruction,... Exit status: 0 done, 1 the service
refused (its error code and message are printed), 2 bad arguments or input files, 3 the service is unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from client.api import Client, default_url
from client.errors import APIError, TransportError
from client.results import Encoding, Result
from client.retry import RetryPolicy


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=None, help="service URL (default $DAE_SERVICE_URL or %(default)s)")
    common.add_argument("--token", default=os.environ.get("DAE_AUTH_TOKEN"), help="bearer token")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per try (default %(default)s)")
    common.add_argument("--retries", type=int, default=3, help="retries on 429/503/refused (default %(default)s)")
    common.add_argument("--out", type=Path, default=None, help="directory for the results")

    outs = argparse.ArgumentParser(add_help=False)
    outs.add_argument("--outputs", default=None, help="comma-separated outputs (default: the service's)")
    outs.add_argument("--class", dest="klass", default=None, help="class-aware models: decode as this class")

    p = argparse.ArgumentParser(
        prog="python -m client", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("encode", parents=[common], help="images -> latents and codes")
    e.add_argument("images", nargs="+", type=Path)
    r = sub.add_parser("reconstruct", parents=[common, outs], help="images -> texture, deformation, reconstruction")
    r.add_argument("images", nargs="+", type=Path)
    d = sub.add_parser("decode", parents=[common, outs], help="latent codes -> outputs")
    d.add_argument("codes", nargs="+")
    s = sub.add_parser("swap", parents=[common, outs], help="shape of one image, appearance of another")
    s.add_argument("shape", type=Path)
    s.add_argument("appearance", type=Path)
    i = sub.add_parser("interpolate", parents=[common, outs], help="frames between two images or codes")
    i.add_argument("start")
    i.add_argument("end")
    i.add_argument("--steps", type=int, default=8)
    i.add_argument("--factor", choices=("shape", "appearance", "both"), default="both")
    return p


def class_arg(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


def write(results: Sequence[Result], out: Path, stems: Sequence[str]) -> list[Path]:
    paths: list[Path] = []
    for res, stem in zip(results, stems, strict=True):
        paths += res.save(out, stem)
    return paths


def encoding_json(enc: Encoding, source: str) -> dict[str, object]:
    body: dict[str, object] = {
        "source": source,
        "code": enc.code,
        "shape": enc.shape.tolist(),
        "appearance": enc.appearance.tolist(),
    }
    if enc.shading is not None:
        body["shading"] = enc.shading.tolist()
    if enc.predicted_label is not None:
        body.update(predicted_class=enc.predicted_class, predicted_label=enc.predicted_label)
    return body


def latent_or_image(dae: Client, value: str) -> str:
    """An existing file is encoded first; anything else is taken as a latent code."""
    path = Path(value)
    return dae.encode(path).code if path.is_file() else value


def run(args: argparse.Namespace) -> list[Path]:
    if args.command != "encode" and args.out is None:
        raise ValueError(f"{args.command}: --out DIR is required")
    retry = RetryPolicy(attempts=max(0, args.retries) + 1)
    outputs, klass = getattr(args, "outputs", None), class_arg(getattr(args, "klass", None))
    with Client(args.url or default_url(), token=args.token, timeout=args.timeout, retry=retry) as dae:
        if args.command == "encode":
            lines = [encoding_json(e, str(p)) for e, p in zip(dae.encode_batch(args.images), args.images, strict=True)]
            for line in lines:
                print(json.dumps(line))
            if args.out is None:
                return []
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "encode.json").write_text(json.dumps(lines, indent=1) + "\n")
            return [args.out / "encode.json"]
        if args.command == "reconstruct":
            results = dae.reconstruct_batch(args.images, outputs=outputs, class_=klass)
            return write(results, args.out, [p.stem for p in args.images])
        if args.command == "decode":
            results = dae.decode_batch(args.codes, outputs=outputs, class_=klass)
            return write(results, args.out, [f"decoded_{k}" for k in range(len(results))])
        if args.command == "swap":
            res = dae.swap(args.shape, args.appearance, outputs=outputs, class_=klass)
            return write([res], args.out, [f"swap_{args.shape.stem}_{args.appearance.stem}"])
        start, end = latent_or_image(dae, args.start), latent_or_image(dae, args.end)
        frames = dae.interpolate(start, end, steps=args.steps, factor=args.factor, outputs=outputs, class_=klass)
        paths = write(frames, args.out, [f"frame_{k:02d}" for k in range(len(frames))])
        gif = args.out / "interpolation.gif"
        gif.write_bytes(dae.interpolate_gif(start, end, steps=args.steps, factor=args.factor, class_=klass))
        return [*paths, gif]


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        paths = run(args)
    except APIError as e:
        print(f"error: the service refused: {e}", file=sys.stderr)
        return 1
    except TransportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (OSError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
