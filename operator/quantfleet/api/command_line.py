"""Checking a rendered runtime command line against a runtime's declared flags.

Why: each runtime module (``vllm_flags``, ``sglang_flags``, ``llamacpp_flags``) declares what the operator may emit,
and its ``problems_in_args`` proves that a rendered argument list stays within that declaration. The walk over the
arguments is the same for every runtime; what differs is data (the declared flags, the switches, the closed value
sets, where the model goes), so it is written once here and each module passes its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def problems_in_args(
    args: Sequence[str],
    *,
    emitted_flags: frozenset[str],
    declared_in: str,
    switches: frozenset[str] = frozenset(),
    value_sets: Mapping[str, frozenset[str]] | None = None,
    required_flag: str | None = None,
    positional_model_of: str | None = None,
    inline_values: bool = True,
) -> list[str]:
    """Return what is wrong with ``args`` (the command excluded); empty when it is within the declaration.

    Checks: every option is in ``emitted_flags`` (the message names ``declared_in``) and appears once; switches have no
    value and the other options one; a value of an option in ``value_sets`` is one of its set; ``required_flag``, when
    given, is present. Positional arguments are refused, except that with ``positional_model_of`` (the command's name)
    the model must be the first argument. ``inline_values``: ``--flag=value`` is understood besides ``--flag value``
    (llama-server's parser does not split on ``=``, so its module turns it off).
    """
    value_sets = value_sets or {}
    problems: list[str] = []
    i = 0
    if positional_model_of is not None:
        if not args or args[0].startswith("-"):
            problems.append(f"the model must be the first (positional) argument of `{positional_model_of}`")
        else:
            i = 1
    seen: set[str] = set()
    while i < len(args):
        token = args[i]
        if not token.startswith("--"):
            problems.append(f"unexpected positional argument {token!r}")
            i += 1
            continue
        flag, eq, inline = token.partition("=") if inline_values else (token, "", "")
        value: str | None
        if eq:
            value = inline
            i += 1
        elif flag not in switches and i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
            i += 2
        else:
            value = None
            i += 1
        if flag not in emitted_flags:
            problems.append(f"{flag} is not declared in {declared_in}")
        if flag in seen:
            problems.append(f"{flag} is given more than once")
        seen.add(flag)
        if flag in switches:
            if value is not None:
                problems.append(f"{flag} takes no value")
        elif value is None:
            problems.append(f"{flag} has no value")
        elif flag in value_sets and value not in value_sets[flag]:
            problems.append(f"{flag} {value!r} is not one of {sorted(value_sets[flag])}")
    if required_flag is not None and required_flag not in seen:
        problems.append(f"{required_flag} is missing")
    return problems
