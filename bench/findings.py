"""What profiling found: the reason for each missed target, and where the time goes in the service.

These are written from profiles (py-spy of the running server, pyinstrument of one request path) taken on the
same kind of machine as the report; the report quotes them next to the numbers of its own run.
"""

from __future__ import annotations

REASONS: dict[str, str] = {}

FINDINGS: list[str] = []
