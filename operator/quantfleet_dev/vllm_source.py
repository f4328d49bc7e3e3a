"""Read what the pinned vLLM release accepts from its own source, without installing it.

Why: the operator renders vLLM command lines for an image it does not run in its tests. The only authority on which
flags and values that image accepts is the vLLM source of the same release, so this module downloads the release's
wheel (``pip download --no-deps``; vLLM is never installed, it would pull its own torch) into a cache outside the
checkout, reads the Python files straight from the zip and parses them with :mod:`ast`. :func:`contract_problems`
then compares the result with the declarations in :mod:`quantfleet.api.vllm_flags`.

Where 0.33.0 keeps what we read (each is located by a marker string when it moves, and the parser raises
:class:`SourceLayoutError` rather than returning an empty answer when it cannot find it):

- ``vllm/engine/arg_utils.py`` ``EngineArgs.add_cli_args`` / ``AsyncEngineArgs.add_cli_args``: explicit
  ``add_argument("--flag", ...)`` calls; ``EngineArgs`` fields (the argparse dests);
- ``vllm/entrypoints/common/cli_args.py`` ``make_arg_parser`` (the ``vllm serve`` parser: positional ``model_tag``)
  and ``FrontendArgs``, whose fields become ``--kebab-case`` flags through ``f"--{key.replace('_', '-')}"``;
- ``vllm/model_executor/layers/quantization/__init__.py``: the ``QuantizationMethods`` Literal,
  ``DEPRECATED_QUANTIZATION_METHODS`` and the ``method_to_config`` table of ``get_quantization_config``;
- ``vllm/config/cache.py``: the ``CacheDType`` Literal (the source of ``KV_CACHE_DTYPES``, which validates
  ``--kv-cache-dtype``) and ``CacheConfig.gpu_memory_utilization``'s default;
- ``vllm/entrypoints/serve/instrumentator/{health,metrics}.py``: the ``/health`` route (and its status codes) and the
  ``/metrics`` mount; ``vllm/v1/metrics/loggers.py``: ``name="vllm:..."`` metric definitions;
- deprecation messages in the parser modules (``vllm serve --model`` is one in 0.33.0).

This module does I/O (pip, the file system); it stays outside the pure packages.
"""

from __future__ import annotations

import ast
import functools
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from quantfleet import versions
from quantfleet.api import vllm_flags
from quantfleet_dev import wheel_source
from quantfleet_dev.wheel_source import (
    ROUTE_METHODS,
    SourceLayoutError,
    console_scripts,
    constant,
    keyword,
    metric_names_in,
    name_of,
    parse,
    read_wheel,
    release_version,
    status_codes,
    texts_under,
)

log = logging.getLogger(__name__)

# The image is linux/amd64; naming the platform makes every machine (a macOS laptop too) read the same wheel.
# pip does not widen a manylinux_2_X tag to older glibc versions, so list the ones vLLM has used and may use.
WHEEL_PLATFORMS: tuple[str, ...] = (
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_35_x86_64",
    "manylinux_2_39_x86_64",
)
# Set to a wheel file to use it instead of downloading (air-gapped CI).
WHEEL_ENV = "QUANTFLEET_VLLM_WHEEL"

_DEPRECATION_WORDS = ("deprecat", "will be removed")
_FLAG_IN_TEXT = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")
# Prometheus metric names vLLM defines (`vllm::op` torch custom-op names and log text are not metrics).
_METRIC_NAME = re.compile(r"vllm:[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(frozen=True)
class VllmSource:
    """What one vLLM release's source says it accepts and exposes, as plain sets and values."""

    version: str
    origin: str
    # `vllm serve` options (every spelling) -> argparse dest
    flags: Mapping[str, str]
    # positional arguments of `vllm serve` (dest names)
    positionals: frozenset[str]
    # options that a deprecation message or `deprecated=True` marks for removal
    deprecated_flags: frozenset[str]
    # dataclass fields behind the options (EngineArgs/AsyncEngineArgs and the frontend args)
    arg_fields: frozenset[str]
    quantization_methods: frozenset[str]
    quantization_configs: frozenset[str]
    deprecated_quantization_methods: frozenset[str]
    kv_cache_dtypes: frozenset[str]
    default_gpu_memory_utilization: float
    default_port: int
    # HTTP route path -> status codes its handler sets explicitly
    routes: Mapping[str, frozenset[int]]
    metric_names: frozenset[str]
    console_scripts: frozenset[str]
    cli_subcommands: frozenset[str]


# --------------------------------------------------------------------------------------------------------------------
# Getting the wheel
# --------------------------------------------------------------------------------------------------------------------


def fetch_wheel(version: str | None = None, *, wheel_dir: Path | None = None) -> Path:
    """Return the vLLM wheel of ``version`` (default: the pin), downloading it once into the cache.

    Why a wheel and not the sdist: ``pip download`` of an sdist builds its metadata, which for vLLM means installing
    torch and a CUDA toolchain; ``--only-binary`` never runs vLLM code. 0.33.0's wheel is 336 MB (the sdist 47 MB);
    it is fetched once per machine. The download lands in a private temporary directory and is moved into place, so
    concurrent test runs never see a partial file.
    """
    return wheel_source.fetch_wheel(
        "vllm",
        version or versions.get("vllm.version"),
        platforms=WHEEL_PLATFORMS,
        override_env=WHEEL_ENV,
        wheel_dir=wheel_dir,
    )


def load(version: str | None = None) -> VllmSource:
    """Fetch (or reuse) the pinned wheel and parse it."""
    path = fetch_wheel(version)
    return parse_source(read_wheel(path), origin=str(path))


# --------------------------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------------------------


class _Tree:
    """The release's files, parsed lazily, with definitions found at their known path or by a marker string."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = files
        self._parsed: dict[str, ast.Module] = {}

    def module(self, path: str) -> ast.Module:
        if path not in self._parsed:
            self._parsed[path] = parse(path, self.files[path])
        return self._parsed[path]

    def locate(self, preferred: str, marker: str, what: str) -> str:
        """Path of the module with ``what``: ``preferred`` if it still contains ``marker``, else the one that does."""
        if marker in self.files.get(preferred, ""):
            return preferred
        found = sorted(p for p, text in self.files.items() if p.endswith(".py") and marker in text)
        if not found:
            raise SourceLayoutError(f"cannot find {what}: no vllm source file contains {marker!r} (was {preferred})")
        return found[0]

    def under(self, prefix: str, marker: str) -> Iterator[tuple[str, ast.Module]]:
        for path, _ in texts_under(self.files, prefix, marker):
            yield path, self.module(path)

    def texts_under(self, prefix: str, marker: str) -> Iterator[tuple[str, str]]:
        return texts_under(self.files, prefix, marker)


def _literal_strings(node: ast.expr, where: str) -> list[str]:
    """The strings of ``Literal["a", "b"]`` (or of a list/tuple/set of strings)."""
    if isinstance(node, ast.Subscript) and name_of(node.value) == "Literal":
        node = node.slice
    elems = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    out: list[str] = []
    for elt in elems:
        if not (isinstance(elt, ast.Constant) and isinstance(elt.value, str)):
            raise SourceLayoutError(f"{where}: expected string literals, found {ast.dump(elt)[:80]}")
        out.append(elt.value)
    return out


def _module_assignment(module: ast.Module, name: str) -> ast.expr | None:
    for stmt in module.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
            return stmt.value
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name:
            return stmt.value
    return None


def _required_literal(tree: _Tree, preferred: str, name: str) -> tuple[str, list[str]]:
    path = tree.locate(preferred, f"{name} = ", name)
    value = _module_assignment(tree.module(path), name)
    if value is None:
        raise SourceLayoutError(f"{path}: no module-level assignment to {name}")
    return path, _literal_strings(value, f"{path}:{name}")


def _classes(module: ast.Module) -> dict[str, ast.ClassDef]:
    return {stmt.name: stmt for stmt in module.body if isinstance(stmt, ast.ClassDef)}


def _class_fields(cls: ast.ClassDef) -> dict[str, ast.expr | None]:
    """Annotated class-body attributes (dataclass fields), ``ClassVar`` excluded, name -> default expression."""
    out: dict[str, ast.expr | None] = {}
    for stmt in cls.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            if "ClassVar" in ast.unparse(stmt.annotation):
                continue
            out[stmt.target.id] = stmt.value
    return out


def _mro(classes: Mapping[str, ast.ClassDef], name: str) -> list[ast.ClassDef]:
    """The class and its bases that are defined in the same set of modules, most derived first."""
    out: list[ast.ClassDef] = []
    pending = [name]
    while pending:
        current = classes.get(pending.pop(0))
        if current is None or current in out:
            continue
        out.append(current)
        pending.extend(name_of(base) for base in current.bases)
    return out


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == name:
            return stmt
    return None


def _function(module: ast.Module, name: str) -> ast.FunctionDef | None:
    for stmt in module.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == name:
            return stmt
    return None


def _calls(node: ast.AST, attr: str) -> Iterator[ast.Call]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr == attr:
            yield sub


@dataclass
class _Parser:
    """Accumulates the `vllm serve` argparse options reachable from make_arg_parser."""

    classes: Mapping[str, ast.ClassDef]
    flags: dict[str, str] = field(default_factory=dict)
    positionals: set[str] = field(default_factory=set)
    deprecated: set[str] = field(default_factory=set)
    arg_fields: set[str] = field(default_factory=set)
    visited: set[str] = field(default_factory=set)

    def walk(self, body: ast.AST, where: str) -> None:
        """Record the add_argument calls in ``body`` and follow ``X.add_cli_args(...)`` into known classes."""
        for call in _calls(body, "add_argument"):
            self._add_argument(call, where)
        for call in _calls(body, "add_cli_args"):
            owner = name_of(call.func.value) if isinstance(call.func, ast.Attribute) else ""
            if owner and owner in self.classes:
                self.add_class(owner)

    def add_class(self, name: str) -> None:
        if name in self.visited:
            return
        self.visited.add(name)
        mro = _mro(self.classes, name)
        fields: dict[str, ast.expr | None] = {}
        for cls in reversed(mro):
            fields.update(_class_fields(cls))
        self.arg_fields.update(fields)
        impl = next((m for m in (_method(c, "add_cli_args") for c in mro) if m is not None), None)
        if impl is None:
            raise SourceLayoutError(f"{name}.add_cli_args is called by the serve parser but not defined")
        if _derives_flags_from_fields(impl):
            for key in fields:
                self.flags[f"--{key.replace('_', '-')}"] = key
        self.walk(impl, f"{name}.add_cli_args")

    def _add_argument(self, call: ast.Call, where: str) -> None:
        names = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if not names:
            return  # the field-derived form, handled in add_class
        dest_node = constant(keyword(call, "dest"))
        options = [n for n in names if n.startswith("-")]
        if not options:
            self.positionals.add(str(dest_node or names[0]))
            return
        long_opts = [o for o in options if o.startswith("--")] or options
        dest = str(dest_node) if isinstance(dest_node, str) else long_opts[0].lstrip("-").replace("-", "_")
        for option in options:
            self.flags[option] = dest
        action = keyword(call, "action")
        if constant(keyword(call, "deprecated")) is True or (
            action is not None and "deprecat" in ast.unparse(action).lower()
        ):
            self.deprecated.update(options)


def _derives_flags_from_fields(func: ast.FunctionDef) -> bool:
    """True when ``func`` registers ``f"--{key...}"`` options, i.e. one flag per dataclass field."""
    for call in _calls(func, "add_argument"):
        for arg in call.args:
            if isinstance(arg, ast.JoinedStr) and arg.values:
                first = arg.values[0]
                if isinstance(first, ast.Constant) and first.value == "--":
                    return True
    return False


def _strings(module: ast.Module) -> Iterator[str]:
    """Every string constant and f-string (constant parts) in a module; implicit concatenation is already joined."""
    for node in ast.walk(module):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, ast.JoinedStr):
            yield "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))


def _deprecated_flags_in_messages(modules: Iterable[ast.Module]) -> set[str]:
    """Flags named in a sentence that says "deprecated" or "will be removed"."""
    out: set[str] = set()
    for module in modules:
        for text in _strings(module):
            for sentence in re.split(r"(?<=[.!])\s+", text):
                flags = _FLAG_IN_TEXT.findall(sentence)
                # Judge the words around the flags, not the flags: `--allow-deprecated-quantization` is no deprecation.
                prose = _FLAG_IN_TEXT.sub(" ", sentence).lower()
                if flags and any(word in prose for word in _DEPRECATION_WORDS):
                    out.update(flags)
    return out


def _resolve_default(tree: _Tree, class_name: str, field_name: str, preferred: str) -> object:
    """The default of ``class_name.field_name``, following ``= OtherConfig.field`` and ``Field(default=...)``."""
    for _ in range(5):
        path = tree.locate(preferred, f"class {class_name}", f"class {class_name}")
        cls = _classes(tree.module(path)).get(class_name)
        if cls is None:
            raise SourceLayoutError(f"{path}: class {class_name} not found")
        fields = _class_fields(cls)
        if field_name not in fields:
            raise SourceLayoutError(f"{path}: {class_name} has no field {field_name}")
        value = fields[field_name]
        if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name):
            class_name, field_name, preferred = value.value.id, value.attr, ""
            continue
        if isinstance(value, ast.Call) and name_of(value.func) in ("Field", "field"):
            value = keyword(value, "default")
        default = constant(value)
        if default is None:
            raise SourceLayoutError(f"{path}: {class_name}.{field_name} has no literal default")
        return default
    raise SourceLayoutError(f"{class_name}.{field_name}: default indirection too deep")


def _routes(tree: _Tree) -> dict[str, frozenset[int]]:
    """HTTP paths registered under vllm/entrypoints (decorators, add_api_route, Mount) -> status codes they set."""
    routes: dict[str, set[int]] = {}
    for path, text in tree.texts_under("vllm/entrypoints/", '"/'):
        for route, codes in _routes_in(path, text):
            routes.setdefault(route, set()).update(codes)
    return {route: frozenset(codes) for route, codes in routes.items()}


@functools.lru_cache(maxsize=2048)
def _routes_in(path: str, text: str) -> tuple[tuple[str, frozenset[int]], ...]:
    found: list[tuple[str, frozenset[int]]] = []
    for node in ast.walk(parse(path, text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute):
                    route = constant(deco.args[0]) if deco.args else None
                    if deco.func.attr in ROUTE_METHODS and isinstance(route, str) and route.startswith("/"):
                        found.append((route, frozenset(status_codes(node))))
        elif isinstance(node, ast.Call) and name_of(node.func) in ("Mount", "add_api_route", "add_route"):
            route = constant(node.args[0]) if node.args else None
            if isinstance(route, str) and route.startswith("/"):
                found.append((route, frozenset()))
    return tuple(found)


def _metric_names(tree: _Tree) -> set[str]:
    """Prometheus metric names: ``"vllm:..."`` passed as ``name=`` or first argument of a call."""
    names: set[str] = set()
    for path, text in tree.texts_under("vllm/", '"vllm:'):
        names.update(metric_names_in(path, text, _METRIC_NAME))
    return names


def parse_source(files: Mapping[str, str], *, origin: str) -> VllmSource:
    """Parse a vLLM release's files (path inside the wheel -> text) into a :class:`VllmSource`."""
    tree = _Tree(files)

    subcommands: set[str] = set()
    for _, module in tree.under("vllm/entrypoints/cli/", "CLISubcommand"):
        for cls in _classes(module).values():
            if any(name_of(b) == "CLISubcommand" for b in cls.bases):
                name = _module_assignment(ast.Module(body=cls.body, type_ignores=[]), "name")
                if isinstance(constant(name), str):
                    subcommands.add(str(constant(name)))

    # The `vllm serve` parser: make_arg_parser and every add_cli_args it reaches.
    args_path = tree.locate("vllm/engine/arg_utils.py", "class EngineArgs", "EngineArgs")
    serve_path = tree.locate("vllm/entrypoints/common/cli_args.py", '"model_tag"', "the `vllm serve` parser")
    classes = {**_classes(tree.module(args_path)), **_classes(tree.module(serve_path))}
    make_arg_parser = _function(tree.module(serve_path), "make_arg_parser")
    if make_arg_parser is None:
        raise SourceLayoutError(f"{serve_path}: make_arg_parser not found")
    parser = _Parser(classes)
    parser.walk(make_arg_parser, f"{serve_path}:make_arg_parser")
    if "EngineArgs" not in parser.visited:
        raise SourceLayoutError("the serve parser no longer reaches EngineArgs.add_cli_args")

    message_modules = [tree.module(args_path), tree.module(serve_path)]
    for preferred, marker in (
        ("vllm/utils/argparse_utils.py", "class FlexibleArgumentParser"),
        ("vllm/entrypoints/cli/serve.py", "class ServeSubcommand"),
    ):
        message_modules.append(tree.module(tree.locate(preferred, marker, marker)))
    deprecated = parser.deprecated | (_deprecated_flags_in_messages(message_modules) & set(parser.flags))

    quant_path, quant_methods = _required_literal(
        tree, "vllm/model_executor/layers/quantization/__init__.py", "QuantizationMethods"
    )
    quant_module = tree.module(quant_path)
    deprecated_quant = _module_assignment(quant_module, "DEPRECATED_QUANTIZATION_METHODS")
    configs: set[str] = set()
    for node in ast.walk(quant_module):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        named = any(isinstance(t, ast.Name) and t.id == "method_to_config" for t in targets)
        if named and isinstance(value, ast.Dict):
            configs.update(str(constant(k)) for k in value.keys if isinstance(constant(k), str))
    if not configs:
        raise SourceLayoutError(f"{quant_path}: the method_to_config table of get_quantization_config is gone")

    _, kv_dtypes = _required_literal(tree, "vllm/config/cache.py", "CacheDType")

    gpu_util = _resolve_default(tree, "EngineArgs", "gpu_memory_utilization", args_path)
    port = _resolve_default(tree, "FrontendArgs", "port", serve_path)
    if not isinstance(gpu_util, float) or not isinstance(port, int):
        raise SourceLayoutError(f"unexpected defaults: gpu_memory_utilization={gpu_util!r} port={port!r}")

    return VllmSource(
        version=release_version(files),
        origin=origin,
        flags=dict(parser.flags),
        positionals=frozenset(parser.positionals),
        deprecated_flags=frozenset(deprecated),
        arg_fields=frozenset(parser.arg_fields),
        quantization_methods=frozenset(quant_methods),
        quantization_configs=frozenset(configs),
        deprecated_quantization_methods=frozenset(
            _literal_strings(deprecated_quant, f"{quant_path}:DEPRECATED_QUANTIZATION_METHODS")
            if deprecated_quant is not None
            else []
        ),
        kv_cache_dtypes=frozenset(kv_dtypes),
        default_gpu_memory_utilization=gpu_util,
        default_port=port,
        routes=_routes(tree),
        metric_names=frozenset(_metric_names(tree)),
        console_scripts=console_scripts(files),
        cli_subcommands=frozenset(subcommands),
    )


# --------------------------------------------------------------------------------------------------------------------
# The contract
# --------------------------------------------------------------------------------------------------------------------


def contract_problems(src: VllmSource) -> list[str]:
    """What quantfleet.api.vllm_flags declares that ``src`` does not accept or provide (empty: the contract holds).

    Each message names the flag or value, so a failing test says what an upgrade broke.
    """
    f = vllm_flags
    problems: list[str] = []
    pinned = versions.get("vllm.version")
    if src.version != pinned:
        problems.append(f"source is vLLM {src.version}, the pin (versions.toml vllm.version) is {pinned}")

    script, subcommand = f.VLLM_COMMAND
    if script not in src.console_scripts:
        problems.append(f"console script {script!r} missing (have {sorted(src.console_scripts)})")
    if subcommand not in src.cli_subcommands:
        problems.append(f"`{script} {subcommand}` subcommand missing (have {sorted(src.cli_subcommands)})")
    if f.MODEL_POSITIONAL_DEST not in src.positionals:
        problems.append(f"`vllm serve` has no positional {f.MODEL_POSITIONAL_DEST!r} (have {sorted(src.positionals)})")

    for flag in sorted(f.EMITTED_FLAGS):
        if flag not in src.flags:
            problems.append(f"flag {flag} is not accepted by `vllm serve`")
            continue
        if src.flags[flag] not in src.arg_fields:
            problems.append(f"flag {flag} sets {src.flags[flag]!r}, which is no EngineArgs/FrontendArgs field")
        if flag in src.deprecated_flags:
            problems.append(f"flag {flag} is deprecated")

    for label, values in (
        ("--quantization value", f.EMITTED_QUANTIZATION_VALUES),
        ("detected quantization method", f.DETECTED_QUANTIZATION_METHODS),
    ):
        for value in sorted(values):
            if value not in src.quantization_methods:
                problems.append(f"{label} {value!r} is not in QuantizationMethods")
            if value not in src.quantization_configs:
                problems.append(f"{label} {value!r} has no config in get_quantization_config")
            if value in src.deprecated_quantization_methods:
                problems.append(f"{label} {value!r} is deprecated")

    for dtype in f.KV_CACHE_DTYPES:
        if dtype not in src.kv_cache_dtypes:
            problems.append(f"--kv-cache-dtype value {dtype!r} is not in CacheDType")

    if src.default_gpu_memory_utilization != f.DEFAULT_GPU_MEMORY_UTILIZATION:
        problems.append(
            f"default --gpu-memory-utilization is {src.default_gpu_memory_utilization}, "
            f"declared {f.DEFAULT_GPU_MEMORY_UTILIZATION}"
        )
    if src.default_port != f.DEFAULT_PORT:
        problems.append(f"default --port is {src.default_port}, declared {f.DEFAULT_PORT}")

    for path in sorted(f.ENDPOINT_PATHS):
        if path not in src.routes:
            problems.append(f"HTTP route {path} is not registered")
    if f.HEALTH_ENGINE_DEAD_STATUS not in src.routes.get(f.HEALTH_PATH, frozenset()):
        problems.append(f"{f.HEALTH_PATH} never answers {f.HEALTH_ENGINE_DEAD_STATUS}")

    for metric in sorted(f.METRIC_NAMES):
        if metric not in src.metric_names:
            problems.append(f"metric {metric} is not defined")
    return problems


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    source = load()
    found = contract_problems(source)
    print(f"vllm {source.version} from {source.origin}: {len(source.flags)} flags, contract problems: {len(found)}")
    for problem in found:
        print(f"  - {problem}")
    sys.exit(1 if found else 0)
