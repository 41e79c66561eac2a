"""One harness for the tests, the benchmarks and the stress runs: start the real service, find a free port,
sample a process's memory, and speak raw HTTP/1.1 where a well-behaved client cannot (fault injection).

    harness.ports.free_port()                        a free loopback TCP port
    harness.server.launch(bundle, log, **settings)   ``python -m service`` on loopback, ready; ``.stop()``
    harness.server.Process                           any command as a child process with a log (deploy checks)
    harness.memory.RssSampler(pid)                   RSS every ``interval`` s (psutil); ``rss_bytes``, ``open_fds``
    harness.rawhttp.request / build / multipart      a raw-socket HTTP/1.1 client (hang up mid-upload, ...)

It reaches the service only by launching it and talking HTTP: it imports nothing of ``service`` (nor of
``training``, ``export`` or ``tests``), so ``tests``, ``bench`` and ``stress`` all depend on it and it on none of them.
"""
