"""Read the pinned llama.cpp source for the llama-server contract (tests/unit/test_llamacpp_contract.py).

The source is the pinned llama-cpp-python sdist's vendor/llama.cpp (quantfleet_dev.llama_cpp.fetch_sdist: downloaded
once, sha256-checked), read from the tarball without building or extracting anything. What the operator relies on:

- every flag in quantfleet.api.llamacpp_flags.EMITTED_FLAGS is an option llama-server accepts: common/arg.cpp
  declares each option as ``add_opt(common_arg({"-a", "--alias"}, ...).set_examples({...}))``; an option belongs to
  llama-server when its examples include LLAMA_EXAMPLE_SERVER or LLAMA_EXAMPLE_COMMON (the default when
  set_examples is not called, common/arg.h) and set_excludes does not name LLAMA_EXAMPLE_SERVER (the add_opt lambda
  in common_params_parser_init applies exactly this rule);
- switches take no value and the others one (the handler lambda's signature), and no flag is one that is only
  kept to fail with "the argument has been removed";
- the endpoints are routes of tools/server/server.cpp, the metric names are in server-task.cpp's to_metrics(),
  the default port is common/common.h's, and the server image's entrypoint is /app/llama-server.

Only the standard library here.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from quantfleet.api import llamacpp_flags as lf

ARG_CPP = "common/arg.cpp"
COMMON_H = "common/common.h"
SERVER_CPP = "tools/server/server.cpp"
SERVER_TASK_CPP = "tools/server/server-task.cpp"
CPU_DOCKERFILE = ".devops/cpu.Dockerfile"
FILES = (ARG_CPP, COMMON_H, SERVER_CPP, SERVER_TASK_CPP, CPU_DOCKERFILE)


class SourceLayoutError(RuntimeError):
    """The source no longer has the shape this reader understands (a file or a construct is gone)."""


@dataclass(frozen=True)
class ServerOption:
    names: tuple[str, ...]  # every spelling, negations included ("--webui", "--no-webui", ...)
    takes_value: bool
    examples: frozenset[str]
    excludes: frozenset[str]
    removed: bool = False  # still parsed, but only to fail with "the argument has been removed" (arg_removed)

    @property
    def for_server(self) -> bool:
        ok = "LLAMA_EXAMPLE_SERVER" in self.examples or "LLAMA_EXAMPLE_COMMON" in self.examples
        return ok and "LLAMA_EXAMPLE_SERVER" not in self.excludes


@dataclass
class LlamaCppSource:
    options: list[ServerOption] = field(default_factory=list)
    routes: set[str] = field(default_factory=set)
    metrics: set[str] = field(default_factory=set)
    default_port: int | None = None
    entrypoint: str | None = None

    def server_option(self, flag: str) -> ServerOption | None:
        """The option llama-server would parse `flag` as (None: llama-server has no such option)."""
        for opt in self.options:
            if flag in opt.names and opt.for_server:
                return opt
        return None


def read_sdist(sdist: Path, paths: Iterable[str] = FILES) -> dict[str, str]:
    """{path under vendor/llama.cpp: text} for `paths`, read from the sdist tarball."""
    from quantfleet_dev.llama_cpp import SDIST_ROOT, VENDOR

    want = {f"{SDIST_ROOT}/{VENDOR}/{p}": p for p in paths}
    out: dict[str, str] = {}
    with tarfile.open(sdist) as tf:
        for member in tf:
            rel = want.get(member.name)
            if rel is not None and member.isfile():
                fh = tf.extractfile(member)
                if fh is not None:
                    out[rel] = fh.read().decode("utf-8", errors="replace")
    missing = sorted(set(want.values()) - set(out))
    if missing:
        raise SourceLayoutError(f"{sdist.name} lacks {', '.join(missing)}")
    return out


def _call_end(text: str, open_paren: int) -> int:
    """Index just past the parenthesis matching text[open_paren], skipping C++ strings, chars and raw strings."""
    depth = 0
    i = open_paren
    n = len(text)
    while i < n:
        c = text[i]
        if c == "R" and text.startswith('R"', i) and not (text[i - 1].isalnum() or text[i - 1] == "_"):
            delim_end = text.index("(", i + 2)
            closing = ")" + text[i + 2 : delim_end] + '"'
            i = text.index(closing, delim_end) + len(closing)
            continue
        if c in "\"'":
            j = i + 1
            while text[j] != c:
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            continue
        if c == "/" and text.startswith("//", i):
            i = text.index("\n", i)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise SourceLayoutError("unbalanced parentheses in common/arg.cpp")


_ADD_OPT = re.compile(r"\badd_opt\(common_arg\(")
_WS = r"(?:\s|//[^\n]*)*"  # blanks and line comments
_NAME_GROUP = re.compile(_WS + r'\{\s*("[^"]*"(?:\s*,\s*"[^"]*")*)\s*\}\s*,')
_STRING = re.compile(r'"([^"]*)"')
_EXAMPLES = re.compile(r"\.set_examples\(\{([^}]*)\}\)")
_EXCLUDES = re.compile(r"\.set_excludes\(\{([^}]*)\}\)")
_HANDLER = re.compile(r"\[[^\]]*\]\s*\(\s*common_params\s*&\s*\w*\s*(?:,([^)]*))?\)")


def parse_options(arg_cpp: str) -> list[ServerOption]:
    """Every option common/arg.cpp declares, with its spellings, value-ness and examples."""
    options: list[ServerOption] = []
    for m in _ADD_OPT.finditer(arg_cpp):
        stmt = arg_cpp[m.start() : _call_end(arg_cpp, m.start() + len("add_opt"))]
        pos = m.end() - m.start()
        names: list[str] = []
        groups = 0
        while (g := _NAME_GROUP.match(stmt, pos)) is not None and groups < 2:
            names += _STRING.findall(g.group(1))
            pos = g.end()
            groups += 1
        if not names:
            raise SourceLayoutError(f"an add_opt without option names in {ARG_CPP}: {stmt[:120]!r}")
        # the handler's signature says it: (common_params &) a switch, (common_params &, bool) a switch with a
        # negation, (common_params &, int / const std::string & ...) an option with a value
        handler = _HANDLER.search(re.sub(r"/\*.*?\*/", "", stmt[pos:]))
        if handler is None:
            raise SourceLayoutError(f"no handler lambda for {names} in {ARG_CPP}")
        second = (handler.group(1) or "").strip()
        takes_value = bool(second) and not second.startswith("bool")
        ex = _EXAMPLES.search(stmt)
        exc = _EXCLUDES.search(stmt)
        options.append(
            ServerOption(
                names=tuple(names),
                takes_value=takes_value,
                examples=frozenset(e.strip() for e in ex.group(1).split(","))
                if ex
                else frozenset({"LLAMA_EXAMPLE_COMMON"}),
                excludes=frozenset(e.strip() for e in exc.group(1).split(",")) if exc else frozenset(),
                removed="arg_removed(" in stmt,
            )
        )
    if not options:
        raise SourceLayoutError(f"no add_opt(common_arg(...)) found in {ARG_CPP}")
    return options


def parse_source(files: Mapping[str, str]) -> LlamaCppSource:
    src = LlamaCppSource(options=parse_options(files[ARG_CPP]))
    src.routes = set(re.findall(r'ctx_http\.(?:get|post)\s*\(\s*"([^"]+)"', files[SERVER_CPP]))
    task = files[SERVER_TASK_CPP]
    if '"llamacpp:"' not in task:
        raise SourceLayoutError(f'{SERVER_TASK_CPP} no longer prefixes metrics with "llamacpp:"')
    src.metrics = {f"llamacpp:{n}" for n in re.findall(r'\{\s*"([a-z_]+)",\s*\n\s*"', task)}
    port = re.search(r"int32_t\s+port\s*=\s*(\d+)\s*;", files[COMMON_H])
    src.default_port = int(port.group(1)) if port else None
    entry = re.findall(r'ENTRYPOINT\s*\[\s*"([^"]+)"\s*\]', files[CPU_DOCKERFILE])
    src.entrypoint = entry[-1] if entry else None  # the last stage is `server`
    return src


def contract_problems(src: LlamaCppSource) -> list[str]:
    """Everything in quantfleet.api.llamacpp_flags that this llama.cpp does not honour (empty: the contract holds)."""
    problems: list[str] = []
    for flag in sorted(lf.EMITTED_FLAGS):
        opt = src.server_option(flag)
        if opt is None:
            problems.append(f"llama-server has no option {flag}")
        elif opt.removed:
            problems.append(f"llama-server's option {flag} has been removed (it only fails with a hint)")
        elif opt.takes_value == (flag in lf.SWITCHES):
            want = "no value" if flag in lf.SWITCHES else "a value"
            problems.append(f"{flag}: the operator passes {want}, llama-server's option does the opposite")
    for path in sorted(lf.ENDPOINT_PATHS):
        if path not in src.routes:
            problems.append(f"llama-server does not serve {path}")
    for name in sorted(lf.METRIC_NAMES):
        if name not in src.metrics:
            problems.append(f"llama-server's /metrics has no {name}")
    if src.default_port != lf.DEFAULT_PORT:
        problems.append(f"llama-server's default port is {src.default_port}, not {lf.DEFAULT_PORT}")
    if src.entrypoint != lf.LLAMA_SERVER_COMMAND[0]:
        problems.append(f"the server image's entrypoint is {src.entrypoint}, not {lf.LLAMA_SERVER_COMMAND[0]}")
    return problems
