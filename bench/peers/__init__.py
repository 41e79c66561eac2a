"""The servers the service is measured against in the same ``make bench`` run (see ``bench/http_bench.py``):

- ``floor``: a trivial ASGI app on plain uvicorn (``--loop asyncio --http h11``) that reads the body and answers
  a fixed ~1.6 kB JSON: the HTTP stack's own cost, the ceiling no Python server on it can pass;
- ``minimal``: FastAPI + onnxruntime in ~40 lines (async route, Pillow, ``session.run`` inline, no batching);
- ``lit``: the same bundle served by LitServe (batching on), run from its own virtualenv.

Each is a module whose ``app``/``main`` serves ``POST /encode`` and ``POST /reconstruct`` (``format=npz``) on
a raw ``image/png`` body, with outputs checked equal to the service's before anything is timed.
"""
