"""``workbench alerts export|check``: workbench.yaml's alert rules, for Prometheus or run here.

Owns the commands' arguments and output. ``export`` writes the Prometheus rule file;
``check`` evaluates the rules workbench can evaluate itself once, against the store, and (with
``--notify``) sends what fires to the routed receivers; both are
``workbench.monitoring.alerts._alerts``' work. Errors are WorkbenchErrors, turned into one
``error: ...`` line by the CLI's group.
"""

from __future__ import annotations

from pathlib import Path

import click

from workbench.cli._options import CONTEXT, db_option, echo_json, json_option
from workbench.config import load_config

__all__ = ["alerts_group"]


@click.group("alerts", context_settings=CONTEXT)
def alerts_group() -> None:
    """Export workbench.yaml's alert rules, or evaluate them here.

    `export` writes them for Prometheus; `check` evaluates the simple ones against the store.
    """


@alerts_group.command("export")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the rule file here instead of printing it.",
)
@json_option("Print the rule groups as JSON instead.")
def export_command(output: Path | None, as_json: bool) -> None:
    """Print (or write) alerts.rules as a Prometheus rule file.

    The file passes `promtool check rules`; load it with Prometheus' rule_files. With --json,
    the same groups and rules as JSON (what Prometheus' /api/v1/rules calls them).
    """
    import yaml

    from workbench.monitoring.alerts._alerts import export_rules

    text = export_rules(load_config())
    if as_json:
        echo_json(yaml.safe_load(text))
        return
    if output is None:
        click.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {len(load_config().alerts.rules)} rule(s) to {output}", err=True)


@alerts_group.command("check")
@click.option("--notify", is_flag=True, help="Send firing alerts to their routed receivers.")
@json_option("Print JSON instead of lines.")
@db_option()
def check_command(notify: bool, as_json: bool, db: Path | None) -> None:
    """Evaluate the rules once against the store.

    Rules whose condition holds but that have a `for:` duration show as pending.
    """
    from workbench.monitoring.alerts._alerts import AlertManager
    from workbench.store import open_store

    manager = AlertManager(load_config(), store=open_store(db))
    fired = manager.evaluate()
    deliveries = manager.notify(fired) if notify else []
    states = [
        {
            "name": name,
            "state": state.state,
            "value": state.value,
            "expr": state.rule.expr,
            "reason": state.reason,
        }
        for name, state in manager.states.items()
    ]
    if as_json:
        report = {
            "rules": states,
            "deliveries": [
                {"receiver": d.receiver, "alert": d.alert, "ok": d.ok, "error": d.error}
                for d in deliveries
            ],
        }
        echo_json(report)
        return
    if not states:
        click.echo("no alert rules in workbench.yaml (alerts.rules)")
    for entry in states:
        value = "" if entry["value"] is None else f" value={entry['value']:g}"
        reason = f" ({entry['reason']})" if entry["reason"] else ""
        click.echo(f"{entry['name']}: {entry['state']}{value}{reason}")
    for delivery in deliveries:
        outcome = "sent" if delivery.ok else f"FAILED: {delivery.error}"
        click.echo(f"  {delivery.alert} -> {delivery.receiver}: {outcome}")
