"""Read what the pinned SGLang release accepts from its own source, without installing it.

Why: the operator renders SGLang command lines for an image it does not run in its tests, as it does for vLLM
(``quantfleet_dev.vllm_source``). The authority is the SGLang source of the pinned release: this module downloads the
release's wheel (``pip download --no-deps``; SGLang publishes no sdist for 0.5.23, and installing it would pull torch),
reads the Python files from the zip and parses them with :mod:`ast`. :func:`contract_problems` compares the result
with :mod:`quantfleet.api.sglang_flags`.

Where 0.5.23 keeps what we read (paths inside the wheel; a definition the parser cannot find or read raises
:class:`SourceLayoutError` instead of returning an empty answer):

- ``sglang/launch_server.py``: the ``python -m sglang.launch_server`` entry (``prepare_server_args(sys.argv[1:])``)
  and its warnings; ``entry_points.txt``: the ``sglang`` console script;
- ``sglang/srt/server_args.py``: ``_INPUT_NAMESPACES`` (the namespace classes whose fields become options),
  ``ServerArgs.add_cli_args`` (explicit ``add_argument`` calls: dynamic choices and the deprecated flags) and
  ``prepare_server_args``;
- ``sglang/srt/arg_groups/fields/*.py``: the namespace classes; each ``name: A[T, "help"]`` or ``A[T, Arg(...)]``
  field is an option ``--name-with-dashes`` (or ``Arg.cli_name``) plus ``Arg.aliases``, with ``Arg.choices`` or a
  ``Literal`` type as its choices and ``bool`` fields as ``store_true`` (``arg_utils.add_cli_args_from_dataclass``);
  ``Arg(no_cli=True)`` fields have no option;
- ``sglang/srt/arg_groups/choices.py``: ``QUANTIZATION_CHOICES`` (and the other lists a field names);
- ``sglang/srt/layers/quantization/__init__.py``: ``BASE_QUANTIZATION_METHODS`` and the platform-conditional
  ``.update({...})`` blocks (the registry ``get_quantization_config`` reads);
- ``sglang/srt/configs/model_config.py``: ``rocm_supported_quantization`` in ``_verify_quantization``;
- ``sglang/srt/layers/quantization/**``: ``get_min_capability`` of each config class (the floor
  ``model_loader/loader.py`` enforces);
- ``sglang/srt/entrypoints/http_server.py`` routes and the status codes they set; the ``Mount("/metrics", ...)`` in
  ``sglang/srt/utils/common.py``; ``name="sglang:..."`` metric definitions under ``sglang/srt/``.

This module does I/O (pip, the file system); it stays outside the pure packages.
"""

from __future__ import annotations

import ast
import logging
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from quantfleet import versions
from quantfleet.api import sglang_flags
from quantfleet.hardware import sglang as sglang_hardware
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

# The images are linux/amd64 (and arm64) with CPython 3.12; the Python sources are the same in every wheel of a
# release, but naming the platform and interpreter makes every machine (a macOS laptop too) read the same file.
WHEEL_PLATFORMS: tuple[str, ...] = (
    "manylinux_2_34_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux_2_35_x86_64",
    "manylinux_2_39_x86_64",
)
WHEEL_PYTHON = "3.12"
# Set to a wheel file to use it instead of downloading (air-gapped CI).
WHEEL_ENV = "QUANTFLEET_SGLANG_WHEEL"

SERVER_ARGS = "sglang/srt/server_args.py"
FIELDS_DIR = "sglang/srt/arg_groups/fields/"
CHOICES_PY = "sglang/srt/arg_groups/choices.py"
QUANT_INIT = "sglang/srt/layers/quantization/__init__.py"
QUANT_DIR = "sglang/srt/layers/quantization/"
MODEL_CONFIG = "sglang/srt/configs/model_config.py"
HTTP_SERVER = "sglang/srt/entrypoints/http_server.py"
LAUNCH_SERVER = "sglang/launch_server.py"

_DEPRECATION_WORDS = ("deprecat", "will be removed", "no longer supported")
_METRIC_NAME = re.compile(r"sglang:[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(frozen=True)
class SglangSource:
    """What one SGLang release's source says it accepts and exposes, as plain sets and values."""

    version: str
    origin: str
    # launch options (every spelling) -> the field (argparse dest) they set
    flags: Mapping[str, str]
    # options registered with a Deprecated* action, or whose help says they are deprecated
    deprecated_flags: frozenset[str]
    # options that take no value (store_true / bool fields)
    boolean_flags: frozenset[str]
    # option -> its closed set of values (only options that declare choices)
    choices: Mapping[str, frozenset[str]]
    # field -> its default, where it is a literal (None included)
    defaults: Mapping[str, object]
    # quantization registry: method -> the platform condition it is registered under ("" = always)
    quantization_methods: Mapping[str, str]
    rocm_quantization_methods: frozenset[str]
    # config class name -> get_min_capability() (the unconditional return; for `a if cond else b`, b)
    min_capabilities: Mapping[str, int]
    # HTTP route path -> status codes its handler sets explicitly
    routes: Mapping[str, frozenset[int]]
    metric_names: frozenset[str]
    console_scripts: frozenset[str]
    # the `python -m sglang.launch_server` module exists and parses argv with prepare_server_args
    launch_module_parses_argv: bool
    # warnings / messages of the launch module that deprecate it
    launch_module_deprecations: tuple[str, ...]


# --------------------------------------------------------------------------------------------------------------------
# Getting the wheel
# --------------------------------------------------------------------------------------------------------------------


def fetch_wheel(version: str | None = None, *, wheel_dir: Path | None = None) -> Path:
    """Return the SGLang wheel of ``version`` (default: the pin), downloading it once into the shared cache.

    0.5.23's wheel is 39 MB (4,700 Python files) and is fetched once per machine into
    ``${QUANTFLEET_CACHE:-~/.cache/quantfleet}/wheels/``; the download lands in a private temporary directory and is
    moved into place, so concurrent test runs never see a partial file.
    """
    return wheel_source.fetch_wheel(
        "sglang",
        version or versions.get("sglang.version"),
        platforms=WHEEL_PLATFORMS,
        override_env=WHEEL_ENV,
        python_version=WHEEL_PYTHON,
        wheel_dir=wheel_dir,
    )


def read_sources(path: Path) -> dict[str, str]:
    """The wheel's ``sglang/srt`` and launcher sources and its dist-info files (the rest is never read)."""
    files = read_wheel(path)
    return {
        name: text
        for name, text in files.items()
        if ".dist-info/" in name or name.startswith("sglang/srt/") or name == LAUNCH_SERVER
    }


def load(version: str | None = None) -> SglangSource:
    """Fetch (or reuse) the pinned wheel and parse it."""
    path = fetch_wheel(version)
    return parse_source(read_sources(path), origin=str(path))


# --------------------------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------------------------


def _module(files: Mapping[str, str], path: str) -> ast.Module:
    if path not in files:
        raise SourceLayoutError(f"{path} is not in the sglang wheel")
    return parse(path, files[path])


def _strings(node: ast.expr | None) -> list[str] | None:
    """The strings of a list/tuple/set literal (None when it is something else)."""
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        values = [constant(e) for e in node.elts]
        if all(isinstance(v, str) for v in values):
            return [str(v) for v in values]
    return None


def _text(node: ast.expr | None) -> str:
    """A string constant, an implicit concatenation, or the constant parts of an f-string / ``+`` chain."""
    if node is None:
        return ""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    if isinstance(node, ast.BinOp):
        return _text(node.left) + _text(node.right)
    return ""


def _module_lists(module: ast.Module) -> dict[str, list[str]]:
    """Module-level ``NAME = [<strings>]`` assignments (the choice lists)."""
    out: dict[str, list[str]] = {}
    for stmt in module.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            values = _strings(stmt.value)
            if values is not None:
                out[stmt.targets[0].id] = values
    return out


def _input_namespaces(files: Mapping[str, str]) -> list[str]:
    for stmt in _module(files, SERVER_ARGS).body:
        named = isinstance(stmt, ast.Assign) and any(name_of(t) == "_INPUT_NAMESPACES" for t in stmt.targets)
        if named and isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.List):
            return [name_of(e) for e in stmt.value.elts]
    raise SourceLayoutError(f"{SERVER_ARGS}: _INPUT_NAMESPACES (the namespaces whose fields are options) is gone")


@dataclass
class _Options:
    flags: dict[str, str]
    deprecated: set[str]
    boolean: set[str]
    choices: dict[str, frozenset[str]]
    defaults: dict[str, object]


def _annotated_parts(annotation: ast.expr) -> tuple[ast.expr, ast.expr] | None:
    """``A[T, meta, ...]`` -> (T, the first ``Arg(...)`` or help string, as ``_unwrap_annotated`` picks it).

    None when the field has no CLI metadata (``add_cli_args_from_dataclass`` skips it)."""
    if (
        isinstance(annotation, ast.Subscript)
        and name_of(annotation.value) in ("A", "Annotated")
        and isinstance(annotation.slice, ast.Tuple)
        and len(annotation.slice.elts) >= 2
    ):
        for meta in annotation.slice.elts[1:]:
            is_arg = isinstance(meta, ast.Call) and name_of(meta.func) == "Arg"
            if is_arg or isinstance(meta, ast.JoinedStr | ast.BinOp) or isinstance(constant(meta), str):
                return annotation.slice.elts[0], meta
    return None


def _literal_values(tp: ast.expr) -> list[str] | None:
    """The strings of ``Literal[...]``, also inside ``Optional[...]`` / ``X | None``."""
    if isinstance(tp, ast.Subscript) and name_of(tp.value) == "Optional":
        return _literal_values(tp.slice)
    if isinstance(tp, ast.BinOp):
        return _literal_values(tp.left) or _literal_values(tp.right)
    if isinstance(tp, ast.Subscript) and name_of(tp.value) == "Literal":
        elts = tp.slice.elts if isinstance(tp.slice, ast.Tuple) else [tp.slice]
        values = [constant(e) for e in elts]
        return [str(v) for v in values]
    return None


def _is_bool(tp: ast.expr) -> bool:
    return isinstance(tp, ast.Name) and tp.id == "bool"


def _field_options(path: str, cls: ast.ClassDef, lists: Mapping[str, list[str]], out: _Options) -> None:
    """The options ``add_cli_args_from_dataclass`` derives from one namespace class's fields."""
    for stmt in cls.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        parts = _annotated_parts(stmt.annotation)
        if parts is None:
            continue  # no Arg metadata: add_cli_args_from_dataclass skips it
        field_name = stmt.target.id
        tp, meta = parts
        cli_name = f"--{field_name.replace('_', '-')}"
        aliases: list[str] = []
        choices: list[str] | None = None
        help_text = ""
        action: ast.expr | None = None
        if isinstance(meta, ast.Call) and name_of(meta.func) == "Arg":
            if constant(keyword(meta, "no_cli")) is True:
                continue
            named = constant(keyword(meta, "cli_name"))
            cli_name = named if isinstance(named, str) else cli_name
            aliases = _strings(keyword(meta, "aliases")) or []
            choice_node = keyword(meta, "choices")
            if choice_node is not None:
                choices = _strings(choice_node)
                if choices is None and isinstance(choice_node, ast.Name):
                    if choice_node.id not in lists:
                        raise SourceLayoutError(f"{path}: {field_name} choices {choice_node.id} not found")
                    choices = lists[choice_node.id]
            help_text = _text(keyword(meta, "help"))
            action = keyword(meta, "action")
        else:
            help_text = _text(meta)
        if choices is None:
            choices = _literal_values(tp)
        names = [cli_name, *aliases]
        for name in names:
            out.flags[name] = field_name
            if choices is not None:
                out.choices[name] = frozenset(choices)
            if action is None and _is_bool(tp):
                out.boolean.add(name)
        if (action is not None and "deprecat" in ast.unparse(action).lower()) or _says_deprecated(help_text):
            out.deprecated.update(names)
        if stmt.value is not None and (isinstance(stmt.value, ast.Constant) or constant(stmt.value) is not None):
            out.defaults[field_name] = constant(stmt.value)


def _says_deprecated(text: str) -> bool:
    head = text.strip().lower()
    return head.startswith("deprecated") or head.startswith("(deprecated")


def _explicit_options(files: Mapping[str, str], lists: Mapping[str, list[str]], out: _Options) -> None:
    """``add_argument`` calls in ``ServerArgs.add_cli_args`` (dynamic choices, ``--config``, deprecated flags)."""
    module = _module(files, SERVER_ARGS)
    cls = next((s for s in module.body if isinstance(s, ast.ClassDef) and s.name == "ServerArgs"), None)
    method = (
        next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "add_cli_args"), None)
        if cls is not None
        else None
    )
    if method is None:
        raise SourceLayoutError(f"{SERVER_ARGS}: ServerArgs.add_cli_args not found")
    if not any(isinstance(n, ast.Call) and name_of(n.func) == "add_cli_args_from_dataclass" for n in ast.walk(method)):
        raise SourceLayoutError(f"{SERVER_ARGS}: ServerArgs.add_cli_args no longer derives options from the fields")
    for node in ast.walk(method):
        if not (isinstance(node, ast.Call) and name_of(node.func) == "add_argument"):
            continue
        names = [str(constant(a)) for a in node.args if isinstance(constant(a), str)]
        options = [n for n in names if n.startswith("-")]
        if not options:
            continue
        dest = constant(keyword(node, "dest"))
        field_name = dest if isinstance(dest, str) else options[0].lstrip("-").replace("-", "_")
        action = keyword(node, "action")
        choice_node = keyword(node, "choices")
        choices = _strings(choice_node)
        if choices is None and isinstance(choice_node, ast.Name) and choice_node.id in lists:
            choices = lists[choice_node.id]
        for option in options:
            out.flags[option] = field_name
            if choices is not None:
                out.choices[option] = frozenset(choices)
            if action is not None and "store_true" in ast.unparse(action).lower():
                out.boolean.add(option)
        if (action is not None and "deprecat" in ast.unparse(action).lower()) or _says_deprecated(
            _text(keyword(node, "help"))
        ):
            out.deprecated.update(options)


def _options(files: Mapping[str, str]) -> _Options:
    lists = _module_lists(_module(files, CHOICES_PY))
    namespaces = _input_namespaces(files)
    out = _Options(flags={}, deprecated=set(), boolean=set(), choices={}, defaults={})
    found: set[str] = set()
    for path in sorted(p for p in files if p.startswith(FIELDS_DIR) and p.endswith(".py")):
        module = parse(path, files[path])
        local_lists = {**lists, **_module_lists(module)}
        for stmt in module.body:
            if isinstance(stmt, ast.ClassDef) and stmt.name in namespaces:
                found.add(stmt.name)
                _field_options(path, stmt, local_lists, out)
    missing = [n for n in namespaces if n not in found]
    if missing:
        raise SourceLayoutError(f"namespace classes {missing} are not defined under {FIELDS_DIR}")
    _explicit_options(files, lists, out)
    return out


def _quantization_methods(files: Mapping[str, str]) -> dict[str, str]:
    """Registry keys: ``BASE_QUANTIZATION_METHODS = {...}`` ("" = always) and ``.update({...})`` under an ``if``."""
    module = _module(files, QUANT_INIT)
    methods: dict[str, str] = {}
    for stmt in module.body:
        if isinstance(stmt, ast.AnnAssign | ast.Assign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(name_of(t) == "BASE_QUANTIZATION_METHODS" for t in targets) and isinstance(stmt.value, ast.Dict):
                for key in stmt.value.keys:
                    if isinstance(constant(key), str):
                        methods[str(constant(key))] = ""
        elif isinstance(stmt, ast.If):
            condition = ast.unparse(stmt.test)
            for node in ast.walk(stmt):
                if (
                    isinstance(node, ast.Call)
                    and name_of(node.func) == "update"
                    and isinstance(node.func, ast.Attribute)
                    and name_of(node.func.value) == "BASE_QUANTIZATION_METHODS"
                    and node.args
                    and isinstance(node.args[0], ast.Dict)
                ):
                    for key in node.args[0].keys:
                        value = constant(key)
                        if isinstance(value, str):
                            methods.setdefault(value, condition)
    if not methods:
        raise SourceLayoutError(f"{QUANT_INIT}: BASE_QUANTIZATION_METHODS is gone")
    return methods


def _rocm_methods(files: Mapping[str, str]) -> frozenset[str]:
    for node in ast.walk(_module(files, MODEL_CONFIG)):
        if isinstance(node, ast.FunctionDef) and node.name == "_verify_quantization":
            for sub in ast.walk(node):
                if isinstance(sub, ast.Assign) and any(
                    name_of(t) == "rocm_supported_quantization" for t in sub.targets
                ):
                    values = _strings(sub.value)
                    if values is None:
                        raise SourceLayoutError(f"{MODEL_CONFIG}: rocm_supported_quantization is not a list")
                    return frozenset(values)
    raise SourceLayoutError(f"{MODEL_CONFIG}: rocm_supported_quantization in _verify_quantization is gone")


def _min_capabilities(files: Mapping[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for path in sorted(p for p in files if p.startswith(QUANT_DIR) and p.endswith(".py")):
        if "get_min_capability" not in files[path]:
            continue
        for node in ast.walk(parse(path, files[path])):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "get_min_capability" and item.body:
                    last = item.body[-1]
                    if isinstance(last, ast.Return) and last.value is not None:
                        value = last.value.orelse if isinstance(last.value, ast.IfExp) else last.value
                        if isinstance(constant(value), int):
                            out[node.name] = int(str(constant(value)))
    return out


def _routes(files: Mapping[str, str]) -> dict[str, frozenset[int]]:
    routes: dict[str, set[int]] = {}
    for node in ast.walk(_module(files, HTTP_SERVER)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) and deco.args:
                    route = constant(deco.args[0])
                    if deco.func.attr in ROUTE_METHODS and isinstance(route, str) and route.startswith("/"):
                        routes.setdefault(route, set()).update(status_codes(node))
    for path, text in texts_under(files, "sglang/srt/", "Mount("):
        for node in ast.walk(parse(path, text)):
            if isinstance(node, ast.Call) and name_of(node.func) == "Mount" and node.args:
                route = constant(node.args[0])
                if isinstance(route, str) and route.startswith("/"):
                    routes.setdefault(route, set())
    return {route: frozenset(codes) for route, codes in routes.items()}


def _launch_module(files: Mapping[str, str]) -> tuple[bool, tuple[str, ...]]:
    module = _module(files, LAUNCH_SERVER)
    main = next(
        (
            s
            for s in module.body
            if isinstance(s, ast.If) and "__name__" in ast.unparse(s.test) and "__main__" in ast.unparse(s.test)
        ),
        None,
    )
    if main is None:
        return False, ()
    parses = any(
        isinstance(n, ast.Call) and name_of(n.func) == "prepare_server_args" and "sys.argv" in ast.unparse(n)
        for n in ast.walk(main)
    )
    messages = [_text(n) for n in ast.walk(main) if isinstance(n, ast.Constant | ast.JoinedStr | ast.BinOp)]
    deprecations = tuple(m for m in messages if any(w in m.lower() for w in _DEPRECATION_WORDS))
    return parses, deprecations


def parse_source(files: Mapping[str, str], *, origin: str) -> SglangSource:
    """Parse an SGLang release's files (path inside the wheel -> text) into an :class:`SglangSource`."""
    options = _options(files)
    if len(options.flags) < 50:
        raise SourceLayoutError(f"only {len(options.flags)} launch options found: the field layout changed")
    parses, deprecations = _launch_module(files)
    metric_names: set[str] = set()
    for path, text in texts_under(files, "sglang/srt/", '"sglang:'):
        metric_names.update(metric_names_in(path, text, _METRIC_NAME))
    return SglangSource(
        version=release_version(files),
        origin=origin,
        flags=dict(options.flags),
        deprecated_flags=frozenset(options.deprecated),
        boolean_flags=frozenset(options.boolean),
        choices=dict(options.choices),
        defaults=dict(options.defaults),
        quantization_methods=_quantization_methods(files),
        rocm_quantization_methods=_rocm_methods(files),
        min_capabilities=_min_capabilities(files),
        routes=_routes(files),
        metric_names=frozenset(metric_names),
        console_scripts=console_scripts(files),
        launch_module_parses_argv=parses,
        launch_module_deprecations=deprecations,
    )


# --------------------------------------------------------------------------------------------------------------------
# The contract
# --------------------------------------------------------------------------------------------------------------------


def contract_problems(src: SglangSource) -> list[str]:
    """What quantfleet.api.sglang_flags declares that ``src`` does not accept or provide (empty: the contract holds)."""
    f = sglang_flags
    problems: list[str] = []
    pinned = versions.get("sglang.version")
    if src.version != pinned:
        problems.append(f"source is SGLang {src.version}, the pin (versions.toml sglang.version) is {pinned}")

    if not src.launch_module_parses_argv:
        problems.append(f"`python -m {f.LAUNCH_MODULE}` no longer parses sys.argv with prepare_server_args")
    for message in src.launch_module_deprecations:
        problems.append(f"`python -m {f.LAUNCH_MODULE}` is deprecated: {message.strip().splitlines()[0][:160]}")

    for flag in sorted(f.EMITTED_FLAGS):
        if flag not in src.flags:
            problems.append(f"flag {flag} is not accepted by {f.LAUNCH_MODULE}")
            continue
        if flag in src.deprecated_flags:
            problems.append(f"flag {flag} is deprecated")
        takes_no_value = flag in src.boolean_flags
        if takes_no_value != (flag in f.BOOLEAN_FLAGS):
            problems.append(f"flag {flag} {'takes no value' if takes_no_value else 'takes a value'} upstream")

    for flag, values in (
        (f.FLAG_QUANTIZATION, f.EMITTED_QUANTIZATION_VALUES),
        (f.FLAG_KV_CACHE_DTYPE, f.KV_CACHE_DTYPES),
    ):
        accepted = src.choices.get(flag)
        if accepted is None:
            problems.append(f"{flag} no longer declares its choices")
            continue
        for value in sorted(values):
            if value not in accepted:
                problems.append(f"{flag} value {value!r} is not in its choices")

    for method in sorted(f.DETECTED_QUANTIZATION_METHODS | f.EMITTED_QUANTIZATION_VALUES):
        if method not in src.quantization_methods:
            problems.append(f"quantization method {method!r} is not registered in QUANTIZATION_METHODS")
    for method in sorted(f.ROCM_QUANTIZATION_METHODS):
        if method not in src.rocm_quantization_methods:
            problems.append(f"quantization method {method!r} is not in rocm_supported_quantization")
    for method in sorted(src.rocm_quantization_methods & f.DETECTED_QUANTIZATION_METHODS - f.ROCM_QUANTIZATION_METHODS):
        problems.append(f"quantization method {method!r} is now in rocm_supported_quantization: declare it")

    for field_name, declared in (("port", f.DEFAULT_PORT), ("mem_fraction_static", f.DEFAULT_MEM_FRACTION_STATIC)):
        if field_name not in src.defaults:
            problems.append(f"default of {field_name} is not a literal any more")
        elif src.defaults[field_name] != declared:
            problems.append(f"default {field_name} is {src.defaults[field_name]!r}, declared {declared!r}")

    for path in sorted(f.ENDPOINT_PATHS):
        if path not in src.routes:
            problems.append(f"HTTP route {path} is not registered")
    if f.HEALTH_NOT_READY_STATUS not in src.routes.get(f.HEALTH_PATH, frozenset()):
        problems.append(f"{f.HEALTH_PATH} never answers {f.HEALTH_NOT_READY_STATUS}")

    for metric in sorted(f.METRIC_NAMES):
        if metric not in src.metric_names:
            problems.append(f"metric {metric} is not defined")
    return problems + hardware_problems(src)


def hardware_problems(src: SglangSource) -> list[str]:
    """What quantfleet.hardware.sglang states about the release that its source does not say."""
    h = sglang_hardware
    problems: list[str] = []
    floors = {cls: floor for floor, _, cls in h.MIN_CAPABILITY.values()} | dict(h.SCHEME_MIN_CAPABILITY)
    for cls, floor in sorted(floors.items()):
        found = src.min_capabilities.get(cls)
        if found is None:
            problems.append(f"{cls}.get_min_capability is not found")
        elif found != floor:
            problems.append(f"{cls}.get_min_capability is {found}, quantfleet.hardware.sglang says {floor}")
    condition = src.quantization_methods.get(sglang_flags.QUANT_METHOD_MXFP4)
    if condition is not None and not ("is_cuda()" in condition and "_is_gfx95_supported" in condition):
        problems.append(
            f"mxfp4 is registered under {condition or 'every platform'!r}, not (CUDA or gfx950): "
            "update quantfleet.hardware.sglang.MXFP4_GFX_ARCHES"
        )
    return problems


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    source = load()
    found = contract_problems(source)
    print(f"sglang {source.version} from {source.origin}: {len(source.flags)} flags, contract problems: {len(found)}")
    for problem in found:
        print(f"  - {problem}")
    sys.exit(1 if found else 0)
