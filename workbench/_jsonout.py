"""The CLI's JSON output: one printer for every command's ``--json``.

Scrubbed as the store is (a store written before a rule existed leaks nothing through it), and
money rounded to 10 decimal places: a sum of float prices prints as ``1.05e-05``, not
``1.0500000000000001e-05``, and scripts comparing costs are not tripped by float noise.
"""

from __future__ import annotations

from typing import Any

import click
import orjson

from workbench.redaction import scrub_output, sensitive_names_for

__all__ = ["echo_json", "money_rounded"]

#: Keys whose numbers are amounts of money (``cost_usd``, ``model_cost_dollars``, ``spend``...).
_MONEY_WORDS = ("cost", "usd", "spend", "dollar", "price")
_MONEY_DIGITS = 10


def money_rounded(value: Any, money: bool = False) -> Any:
    """``value`` with every float under a money-named key rounded to 10 decimal places."""
    if isinstance(value, float):
        return round(value, _MONEY_DIGITS) if money else value
    if isinstance(value, dict):
        return {key: money_rounded(item, money or _is_money(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [money_rounded(item, money) for item in value]
    return value


def _is_money(key: object) -> bool:
    return isinstance(key, str) and any(word in key.lower() for word in _MONEY_WORDS)


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout, scrubbed, money rounded."""
    value = money_rounded(scrub_output(value, sensitive_names_for()))
    click.echo(
        orjson.dumps(value, default=repr, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    )
