"""A small Dockerfile reader: just enough to run an image's final stage outside Docker.

No Docker engine runs on the CI machines, so the deploy tests read what the image *would* run (its ENTRYPOINT
and CMD, its ENV after build-argument substitution, its HEALTHCHECK, where COPY puts files) and run exactly
that on the host. Supports what our Dockerfiles use: line continuations, comments and parser directives,
`ARG name[=default]`, `ENV k=v ...`, exec-form (JSON) ENTRYPOINT/CMD/HEALTHCHECK, `COPY [--from=..] src dst`.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case, e.g. "ENV"
    args: str  # the rest of the logical line, continuations joined
    line: int  # 1-based line of the instruction in the file


@dataclass
class Stage:
    """The instructions of one FROM ... stage, with the variables in effect at its end."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)  # the CMD of HEALTHCHECK, exec form
    user: str | None = None
    # (source, destination) of each COPY from the build context
    copies: list[tuple[str, str]] = field(default_factory=list)

    @property
    def command(self) -> list[str]:
        return [*self.entrypoint, *self.cmd]


def instructions(text: str) -> list[Instruction]:
    """Logical instructions of a Dockerfile: comments dropped, backslash continuations joined."""
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):  # comment lines inside a continuation are skipped by Docker too
            continue
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        logical = " ".join(part for part in buf if part)
        buf = []
        keyword, _, args = logical.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
    if buf:
        raise ValueError("Dockerfile ends inside a line continuation")
    return out


def substitute(value: str, variables: dict[str, str]) -> str:
    """Docker's ${VAR}, ${VAR:-default} and $VAR expansion (unset -> empty or the default)."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if name in variables and (variables[name] or m.group(2) is None):
            return variables[name]
        return m.group(2) or ""

    return _VAR.sub(repl, value)


def _pairs(args: str, variables: dict[str, str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for token in shlex.split(args):
        if "=" not in token:
            raise ValueError(f"only the `ENV key=value` form is supported, got {token!r}")
        key, _, value = token.partition("=")
        result[key] = substitute(value, {**variables, **result})
    return result


def _exec_form(args: str, keyword: str) -> list[str]:
    try:
        value = json.loads(args)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{keyword} must use the exec (JSON) form, got {args!r}") from exc
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ValueError(f"{keyword} must be a JSON list of strings, got {args!r}")
    return value


def stages(path: Path, build_args: dict[str, str] | None = None) -> list[Stage]:
    """Every stage of the Dockerfile at `path`, as `docker build --build-arg ...` would see it."""
    overrides = dict(build_args or {})
    global_args: dict[str, str] = {}
    result: list[Stage] = []
    current: Stage | None = None
    scope: dict[str, str] = {}  # ARGs declared in the current stage (Docker scopes ARG per stage)
    for ins in instructions(path.read_text()):
        if ins.keyword == "FROM":
            words = ins.args.split()
            words = [w for w in words if not w.startswith("--")]
            base = substitute(words[0], global_args)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            parent = next((s for s in result if s.name == base), None)
            current = Stage(base=base, name=name)
            if parent is not None:  # FROM an earlier stage inherits its ENV and USER
                current.env = dict(parent.env)
                current.user = parent.user
            scope = {}
            result.append(current)
            continue
        if ins.keyword == "ARG":
            key, sep, default = ins.args.partition("=")
            key = key.strip()
            if current is None:
                global_args[key] = overrides.get(key, substitute(default, global_args) if sep else "")
            else:
                fallback = substitute(default, scope) if sep else ""
                scope[key] = overrides.get(key, global_args.get(key, fallback))
            continue
        if current is None:
            raise ValueError(f"{path}:{ins.line}: {ins.keyword} before the first FROM")
        current.instructions.append(ins)
        variables = {**scope, **current.env}
        if ins.keyword == "ENV":
            current.env.update(_pairs(ins.args, variables))
        elif ins.keyword == "ENTRYPOINT":
            current.entrypoint = _exec_form(ins.args, "ENTRYPOINT")
            current.cmd = []  # Docker resets an inherited CMD when ENTRYPOINT is set
        elif ins.keyword == "CMD":
            current.cmd = _exec_form(ins.args, "CMD")
        elif ins.keyword == "USER":
            current.user = substitute(ins.args, variables)
        elif ins.keyword == "HEALTHCHECK":
            m = re.search(r"(?:^|\s)CMD\s+(.*)$", ins.args)
            if m is None:
                raise ValueError(f"{path}:{ins.line}: HEALTHCHECK without CMD (NONE is not supported)")
            current.healthcheck = _exec_form(m.group(1), "HEALTHCHECK CMD")
        elif ins.keyword == "COPY" and "--from=" not in ins.args:
            words = [w for w in shlex.split(ins.args) if not w.startswith("--")]
            for src in words[:-1]:
                current.copies.append((src, words[-1]))
    if not result:
        raise ValueError(f"{path}: no FROM")
    return result


def final_stage(path: Path, build_args: dict[str, str] | None = None) -> Stage:
    """The stage `docker build` produces (the last one)."""
    return stages(path, build_args)[-1]


def host_path(image_path: str, stage_list: list[Stage], repo: Path) -> Path | None:
    """Where a file that some stage COPYs from the build context to `image_path` lives in the repository."""
    for stage in stage_list:
        for src, dst in stage.copies:
            if dst.rstrip("/") == image_path.rstrip("/"):
                return repo / src
            if dst.endswith("/") and image_path.startswith(dst):
                return repo / src / image_path[len(dst) :]
    return None


def root_image(stage_list: list[Stage], stage: Stage | None = None) -> str:
    """The registry image a stage is ultimately built FROM (following `FROM <earlier stage>` links)."""
    current = stage or stage_list[-1]
    names = {s.name: s for s in stage_list if s.name}
    seen: set[str] = set()
    while current.base in names and current.base not in seen:
        seen.add(current.base)
        current = names[current.base]
    return current.base
