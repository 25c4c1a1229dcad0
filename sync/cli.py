"""The ``closedloop`` command line.

Every command takes ``--config PATH`` (default ``./closedloop.toml``, else the built-in
defaults). Failures exit non-zero with a one-line reason on stderr: 2 for a configuration
or schema problem someone must fix, 1 for anything else (a job failed, a remote refused).
"""
from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy import func
from sqlmodel import select

from adapters.errors import ClosedloopError, ConfigError
from state import SchemaOutdated, Store
from state.models import ApiBudget, Cursor, DeadLetter, JobRun, OutboxEvent
from sync.config import Config, load_config
from sync.ops.logs import configure_logging, redact

log = logging.getLogger("closedloop")

EXIT_FAILED = 1
EXIT_CONFIG = 2


def _version() -> str:
    try:
        return version("closedloop")
    except PackageNotFoundError:  # running from a source tree without installing
        from sync import __version__
        return __version__


class _Group(click.Group):
    """Turns closedloop's own errors into a one-line reason and an exit status."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (ConfigError, SchemaOutdated) as exc:
            _fail(str(exc), EXIT_CONFIG)
        except ClosedloopError as exc:
            _fail(exc.user_message, EXIT_FAILED)
        except OSError as exc:
            _fail(str(exc), EXIT_FAILED)


def _fail(message: str, status: int) -> None:
    lines = redact(message).splitlines() or ["failed"]
    if len(lines) == 1:
        click.echo(f"closedloop: error: {lines[0]}", err=True)
    else:
        click.echo(f"closedloop: error: {len(lines)} problems:", err=True)
        for line in lines:
            click.echo(f"  {line}", err=True)
    sys.exit(status)


config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Config file (default: ./closedloop.toml if present, else built-in defaults).")


def boot(config_path: Path | None, *, check_schema: bool = True, remote: bool = True) -> tuple[Config, Store]:
    """Load the config, set up logging and open the store (checking its schema). ``remote=False``
    for commands that never call a CRM or GA4: their secrets need not be in the environment."""
    config = load_config(config_path, require_secrets=remote)
    configure_logging(config.settings.logging.level, config.settings.logging.format, config.secret_values())
    store = Store(config.database_url)
    if check_schema:
        store.check_schema()
    return config, store


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="closedloop")
def main() -> None:
    """closedloop: website journeys into CRM lead fields, won revenue back into GA4."""


@main.command()
@config_option
@click.option("--once", is_flag=True, help="Run every enabled job once and exit (for cron and tests).")
def run(config_path: Path | None, once: bool) -> None:
    """Run the daemon: the collector plus the scheduled jobs."""
    from sync.daemon import Daemon

    config, store = boot(config_path)
    daemon = Daemon(config, store)
    if not once:
        daemon.serve()
        return
    outcomes = daemon.run_once()
    failed = [outcome for outcome in outcomes if not outcome.succeeded]
    for outcome in outcomes:
        click.echo(f"{outcome.job}: {outcome.outcome} (read {outcome.result.records_read}, "
                   f"wrote {outcome.result.records_written}, {outcome.seconds:.1f}s)"
                   + (f": {outcome.error}" if outcome.error else ""))
    if failed:
        _fail(f"{len(failed)} job(s) failed: " + "; ".join(f"{o.job}: {o.error}" for o in failed), EXIT_FAILED)


@main.command()
@config_option
def collector(config_path: Path | None) -> None:
    """Serve only the collector (to scale it out separately from the jobs)."""
    import uvicorn

    from sync.capture.app import create_app
    from sync.capture.server import BackgroundServer, proxy_options
    from sync.jobs import job_intervals

    config, store = boot(config_path, remote=False)
    settings, admin = config.settings.collector, config.settings.admin
    app = create_app(config, store, job_intervals=job_intervals(config))
    admin_server = BackgroundServer(app.state.admin.app(), admin.host, admin.port).start() \
        if admin.port is not None else None
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False, lifespan="on",
                    **proxy_options(settings.trusted_proxies))
    finally:
        if admin_server is not None:
            admin_server.stop()


@main.command()
@config_option
def migrate(config_path: Path | None) -> None:
    """Create or upgrade the state database schema."""
    config, store = boot(config_path, check_schema=False, remote=False)
    before, after = store.migrate()
    if before == after:
        click.echo(f"state schema is up to date ({after}) in {store.safe_url}")
    else:
        click.echo(f"migrated {store.safe_url} from {before or 'empty'} to {after}")


@main.command()
@config_option
def check(config_path: Path | None) -> None:
    """Check the config, the state database, CRM credentials and every field mapping
    against the CRM's live metadata."""
    from mappings.check import check_against_crm
    from sync.journey.variables import ENUMERATIONS, catalogue
    from sync.ops.connections import Connections

    config, store = boot(config_path, check_schema=False)
    click.echo(f"config: ok ({config.source})")
    store.check_schema()
    click.echo(f"state: ok ({store.safe_url}, schema {store.current_revision()})")
    connections = Connections(config)
    problems: list[str] = []
    for crm in connections.enabled_crms():
        mapping = connections.mapping(crm)
        adapter = connections.adapter(crm)
        describe = {name: adapter.describe_fields(name) for name in mapping.objects}
        found = check_against_crm(mapping, describe, catalogue(), ENUMERATIONS)
        fields = sum(len(o.fields) for o in mapping.objects.values())
        click.echo(f"{crm}: credentials ok; mapping {mapping.path}: {fields} fields, "
                   + ("ok" if not found else f"{len(found)} problem(s)"))
        problems += found
    if config.settings.ga4.enabled:
        connections.ga4()
        click.echo(f"ga4: configured for {config.settings.ga4.measurement_id} at {config.settings.ga4.endpoint} "
                   "(the Measurement Protocol cannot verify a secret; try `closedloop ga4 validate`)")
    if problems:
        raise ConfigError("\n".join(problems))


@main.group()
def fields() -> None:
    """CRM custom fields for the mapped variables."""


@fields.command("create")
@config_option
def fields_create(config_path: Path | None) -> None:
    """Create the custom fields/properties the mappings need; never changes existing ones."""
    from sync.jobs.fields import missing_fields
    from sync.ops.connections import Connections

    config, _store = boot(config_path, check_schema=False)
    connections = Connections(config)
    if not connections.enabled_crms():
        raise ConfigError(f"{config.source}: no CRM is enabled ([salesforce] or [hubspot] enabled = true)")
    for crm in connections.enabled_crms():
        adapter = connections.adapter(crm)
        needed = missing_fields(crm, connections.mapping(crm), adapter.describe_fields)
        created = adapter.ensure_fields(needed) if needed else []
        for name in created:
            click.echo(f"{crm}: created {name}")
        click.echo(f"{crm}: {len(created)} field(s) created, "
                   f"{sum(len(o.fields) for o in connections.mapping(crm).objects.values()) - len(created)} "
                   "mapped field(s) already existed")


@main.command()
@config_option
def status(config_path: Path | None) -> None:
    """Show each job's last run, outcome, cursor, backlog and dead letters."""
    from sync.jobs import registry

    config, store = boot(config_path, remote=False)
    console = Console()
    table = Table(title=f"closedloop status — {store.safe_url}", title_justify="left")
    table.add_column("job", no_wrap=True)
    table.add_column("last run", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    for column in ("took", "read", "wrote"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("cursor")
    table.add_column("backlog", justify="right")
    table.add_column("dead letters", justify="right")
    notes = []
    now = datetime.now(timezone.utc)
    with store.session(readonly=True) as session:
        for job_class in registry():
            run = session.exec(select(JobRun).where(JobRun.job == job_class.name)
                               .order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(1)).first()
            cursors = session.exec(select(Cursor).where(Cursor.stream.startswith(f"{job_class.name}:"))).all()
            dead = session.exec(select(func.count()).select_from(DeadLetter)
                                .where(DeadLetter.job == job_class.name, DeadLetter.status == "open")).one()
            backlog = job_class.backlog(session)
            enabled = job_class.enabled(config)
            table.add_row(
                job_class.name + ("" if enabled else " (disabled)"),
                _ago(now, run.started_at) if run else "never",
                run.outcome if run else "-",
                f"{(run.finished_at - run.started_at).total_seconds():.1f}s" if run and run.finished_at else "-",
                str(run.records_read) if run else "-",
                str(run.records_written) if run else "-",
                "\n".join(f"{c.crm} {c.stream.split(':', 1)[1]}: {c.value}" for c in cursors) or "-",
                "-" if backlog is None else str(backlog),
                str(dead),
            )
            if run and run.outcome in ("failed", "paused") and run.message:
                notes.append(f"{job_class.name}: {run.message}")
    console.print(table)
    with store.session(readonly=True) as session:
        open_dead = session.exec(select(DeadLetter.job, func.count()).where(DeadLetter.status == "open")
                                 .group_by(DeadLetter.job)).all()
    if open_dead:
        console.print("[yellow]dead letters[/yellow] " + ", ".join(f"{job}: {count}" for job, count in open_dead)
                      + " open — `closedloop dead-letters list`", highlight=False)
    for note in notes:
        console.print(f"[red]last failure[/red] {note}", highlight=False)
    with store.session(readonly=True) as session:
        budgets = session.exec(select(ApiBudget).order_by(ApiBudget.system)).all()
    for budget in budgets:
        style = "red" if budget.paused else "green"
        console.print(f"[{style}]API budget[/{style}] {budget.system}: {budget.description} "
                      f"({_ago(now, budget.updated_at)})", highlight=False)


@main.command()
@config_option
@click.option("--crm", required=True, type=click.Choice(["salesforce", "hubspot"]), help="Which CRM to backfill.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Only records changed since this day (UTC). Default: every record.")
@click.option("--restart", is_flag=True, help="Forget an unfinished backfill and start again.")
def backfill(config_path: Path | None, crm: str, since: datetime | None, restart: bool) -> None:
    """Enrich the records a CRM already holds. Ctrl-C stops after the current page; run the same
    command again to resume."""
    import signal

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sync.jobs.backfill import Backfill, EnrichRunning
    from sync.jobs.base import StopRequested
    from sync.ops.budgets import record_allowance
    from sync.ops.connections import Connections

    config, store = boot(config_path)
    connections = Connections(config)
    job = Backfill(config, store, connections, crm, since=since.replace(tzinfo=timezone.utc) if since else None,
                   restart=restart)
    console = Console()
    console.print(("Resuming" if job.resumed else "Starting") + f" the {crm} backfill of records changed since "
                  f"{job.since.date() if job.since.year > 1970 else 'the beginning'}", highlight=False)

    def stop_softly(signum, frame) -> None:
        if job.stop.is_set():
            raise KeyboardInterrupt
        job.stop.set()
        console.print("stopping after the current page (Ctrl-C again to stop at once)")

    previous = {sig: signal.signal(sig, stop_softly) for sig in (signal.SIGINT, signal.SIGTERM)}
    tasks: dict[str, int] = {}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console)
    try:
        with progress:
            result = job.run(on_start=lambda name, total: tasks.setdefault(name, progress.add_task(
                                 f"{crm} {name}", total=total)),
                             on_page=lambda name, n: progress.advance(tasks[name], n))
    except (StopRequested, KeyboardInterrupt):
        _fail("backfill interrupted; every page up to the last one is saved: run the same command again to resume",
              EXIT_FAILED)
    except EnrichRunning as exc:
        _fail(str(exc), EXIT_FAILED)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        record_allowance(store, crm, connections.adapter(crm).allowance, datetime.now(timezone.utc))
    console.print(f"backfill done: read {result.read} record(s), wrote {result.written}"
                  + "".join(f"; {name}: {n}" for name, n in result.per_object.items()), highlight=False)
    if result.waiting_for_visitor:
        console.print(f"{result.waiting_for_visitor} record(s) have no web visitor yet; the daemon keeps checking "
                      "them for [journey] match_wait_hours", highlight=False)
    if result.dead_letters:
        console.print(f"{result.dead_letters} open dead letter(s): closedloop dead-letters list", highlight=False)


@main.group("dead-letters")
def dead_letters() -> None:
    """Records and GA4 events that failed for a reason retrying alone will not fix."""


@dead_letters.command("list")
@config_option
@click.option("--job", type=click.Choice(["enrich", "ga4", "collector"]), default=None,
              help="Only this job's dead letters.")
@click.option("--all", "show_all", is_flag=True, help="Include retried and dropped ones.")
@click.option("--limit", default=50, show_default=True)
def dead_letters_list(config_path: Path | None, job: str | None, show_all: bool, limit: int) -> None:
    """Show open dead letters, newest first, with the remote's reason."""
    from sync.ops.dead_letters import listing

    _, store = boot(config_path, remote=False)
    rows, total = listing(store, job=job, include_closed=show_all, limit=limit)
    if not rows:
        click.echo("no dead letters" + ("" if show_all else " open"))
        return
    now = datetime.now(timezone.utc)
    click.echo(f"{total} dead letter(s)" + (f", newest {limit} shown" if total > limit else "") + ":")
    for row in rows:  # two lines each: the reason is often long and must not be folded away
        click.echo(f"#{row.id}  {_ago(now, row.created_at)}  {row.job}  {row.crm} {row.object} {row.record_id}  "
                   f"{row.code}  [{row.status}]")
        click.echo(f"    {row.message}")
    click.echo("retry with `closedloop dead-letters retry ID...` once the cause is fixed, "
               "or close with `closedloop dead-letters drop ID...`")


def _dead_letter_selection(command):
    """``ID...``, ``--all`` and ``--job``: which open dead letters a command acts on."""
    for option in reversed([config_option, click.argument("ids", nargs=-1, type=int),
                            click.option("--all", "every", is_flag=True,
                                         help="Every open dead letter (of --job, if given)."),
                            click.option("--job", type=click.Choice(["enrich", "ga4", "collector"]), default=None)]):
        command = option(command)
    return command


@dead_letters.command("retry")
@_dead_letter_selection
def dead_letters_retry(config_path: Path | None, ids: tuple[int, ...], every: bool, job: str | None) -> None:
    """Queue dead letters again: the next run re-reads and rewrites the record, or resends the event."""
    from sync.ops.dead_letters import retry

    _, store = boot(config_path, remote=False)
    done = retry(store, _chosen(ids, every), job=job)
    click.echo(f"queued {done.changed} dead letter(s) again" + _skipped(done))


@dead_letters.command("drop")
@_dead_letter_selection
def dead_letters_drop(config_path: Path | None, ids: tuple[int, ...], every: bool, job: str | None) -> None:
    """Close dead letters without retrying (the record or event is left as it is)."""
    from sync.ops.dead_letters import drop

    _, store = boot(config_path, remote=False)
    done = drop(store, _chosen(ids, every), job=job)
    click.echo(f"dropped {done.changed} dead letter(s)" + _skipped(done))


def _chosen(ids: tuple[int, ...], every: bool) -> list[int] | None:
    if bool(ids) == every:
        raise click.UsageError("give dead-letter ids (see `closedloop dead-letters list`) or --all, not both")
    return None if every else list(ids)


def _skipped(done) -> str:
    notes = f"; not open, so left alone: {', '.join(map(str, done.not_open))}" if done.not_open else ""
    if getattr(done, "not_retryable", None):
        notes += (f"; beacons the database refused cannot be queued again (drop them once read): "
                  f"{', '.join(map(str, done.not_retryable))}")
    return notes


@main.command()
@config_option
@click.argument("email")
def forget(config_path: Path | None, email: str) -> None:
    """Erase a person (by email) from closedloop's store: every device that claimed the address,
    their touchpoints and identities, the CRM record matches and values written to them, GA4
    events, dead letters and ledger client ids. CRM records are not touched."""
    from sync.capture.privacy import forget_email

    config, store = boot(config_path, remote=False)
    try:
        with store.session() as session:
            report = forget_email(session, email)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(report.describe() if report.removed_anything else "nothing stored about that address")


@main.command()
@config_option
@click.argument("visitor_id")
def explain(config_path: Path | None, visitor_id: str) -> None:
    """Print a visitor's journey (all their devices) and why each session got its channel."""
    from sync.capture.stitching import find_person, touchpoints_for
    from sync.journey.compute import explain as explain_journey
    from sync.journey.hits import journey_settings, to_hit

    config, store = boot(config_path, remote=False)
    with store.session(readonly=True) as session:
        person = find_person(session, visitor_ids=[visitor_id])
        hits = [to_hit(row) for row in touchpoints_for(session, person.visitor_ids)]
    if not hits:
        raise ClosedloopError(f"no visitor {visitor_id!r} in {store.safe_url}")
    console = Console()
    devices = ", ".join(sorted(person.visitor_ids))
    console.print(f"Journey of visitor {visitor_id} — {len(person.visitor_ids)} device(s): {devices}"
                  + (" (capped)" if person.truncated else ""), highlight=False)
    table = Table(show_lines=True)
    for column in ("#", "started (UTC)", "device", "landing page", "pages", "source / medium", "campaign",
                   "channel", "why"):
        table.add_column(column, overflow="fold")
    for number, entry in enumerate(explain_journey(hits, journey_settings(config)), start=1):
        table.add_row(str(number), entry.start.strftime("%Y-%m-%d %H:%M"), entry.visitor_id, entry.landing_page or "-",
                      str(entry.pageviews), f"{entry.source} / {entry.medium}", entry.campaign or "-",
                      f"{entry.channel}\n[dim]rule {entry.rule}[/dim]",
                      f"{entry.source_reason};\n{entry.rule_reason}")
    console.print(table)


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".sandbox"),
              show_default=True, help="Where the emulators keep their TLS files and keys.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", "ports", type=int, nargs=3, default=(8701, 8702, 8703), show_default=True,
              help="Ports for Salesforce (HTTPS), HubSpot and GA4.")
def sandbox(data_dir: Path, host: str, ports: tuple[int, int, int]) -> None:
    """Run local emulators of Salesforce, HubSpot and GA4 until Ctrl-C, and say how to use them."""
    import signal
    import threading

    from sandbox.suite import SandboxSuite

    suite = SandboxSuite.start(data_dir, host=host, ports=ports)
    config_path = data_dir / "closedloop.toml"
    config_path.write_text(suite.config(state_url=f"sqlite:///{(data_dir / 'closedloop.db').resolve()}"))
    click.echo(f"Salesforce  {suite.salesforce.url}   (login and instance URL; CA {suite.salesforce.ca_path})")
    click.echo(f"HubSpot     {suite.hubspot.url}")
    click.echo(f"GA4         {suite.ga4.url}   (measurement id {suite.ga4.measurement_id})")
    click.echo(f"\nA config pointing at them: {config_path}\nIts secrets, for your shell:")
    for name, value in suite.environment().items():
        click.echo(f"  export {name}={value}")
    click.echo(f"\nthen: closedloop migrate --config {config_path} && closedloop run --config {config_path}")
    click.echo("Ctrl-C stops the sandbox.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    suite.stop()


@main.group()
def ga4() -> None:
    """GA4 Measurement Protocol tools."""


@ga4.command("validate")
@config_option
@click.option("--sample", default=10, show_default=True, help="How many queued (else recent) events to check.")
def ga4_validate(config_path: Path | None, sample: int) -> None:
    """Send a sample of outbox events to GA4's validation server and print its messages."""
    from adapters.ga4 import validate_request
    from sync.jobs.ga4_events import request_body
    from sync.ops.connections import Connections

    config, store = boot(config_path)
    sender = Connections(config).ga4()
    with store.session(readonly=True) as session:
        events = session.exec(select(OutboxEvent).where(OutboxEvent.status == "pending")
                              .order_by(OutboxEvent.id).limit(sample)).all() or \
            session.exec(select(OutboxEvent).order_by(OutboxEvent.id.desc()).limit(sample)).all()
    if not events:
        click.echo("the outbox is empty: nothing to validate yet")
        return
    now = datetime.now(timezone.utc)
    problems = 0
    for event in events:
        body = request_body([event], now)
        local = validate_request(body)
        remote = sender.validate_remotely(body)
        label = f"{event.event_name} {event.idempotency_key} ({event.status})"
        if not local and not remote:
            click.echo(f"ok    {label}")
            continue
        problems += 1
        click.echo(f"FAIL  {label}")
        for problem in local:
            click.echo(f"        local: {problem}")
        for message in remote:
            click.echo(f"        GA4 {message.get('validationCode')}: {message.get('fieldPath', '')} "
                       f"{message.get('description')}")
    click.echo(f"{len(events) - problems} of {len(events)} event(s) valid")
    if problems:
        raise ClosedloopError(f"{problems} event(s) would be rejected or dropped by GA4")


@main.command()
@config_option
@click.argument("kind", type=click.Choice(["source", "pipeline"]), default="source")
@click.option("--model", type=click.Choice(["first_click", "last_click", "linear", "time_decay", "position",
                                            "w_shaped"]), default="first_click", show_default=True,
              help="How revenue is shared among a deal's touches.")
@click.option("--half-life", "half_life", type=float, default=7.0, show_default=True,
              help="Days; for the time_decay model.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="From this day (UTC).")
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Up to this day (UTC).")
@click.option("--format", "output", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a self-contained HTML report with charts to this file.")
def report(config_path: Path | None, kind: str, model: str, half_life: float, since, until, output: str,
           html_path: Path | None) -> None:
    """Revenue and pipeline by channel, source, campaign and keyword."""
    from datetime import timedelta

    from sync.journey.hits import journey_settings
    from sync.reports.build import pipeline_report, source_report, to_csv, to_json

    config, store = boot(config_path, remote=False)
    since = since.replace(tzinfo=timezone.utc) if since else None
    until = until.replace(tzinfo=timezone.utc) + timedelta(days=1) if until else None
    settings = journey_settings(config)
    with store.session(readonly=True) as session:
        sources = source_report(session, settings, model=model, half_life=timedelta(days=half_life), since=since,
                                until=until)
        pipeline = pipeline_report(session, settings, since=since, until=until)
    if html_path:
        from sync.reports.html import render_html

        html_path.write_text(render_html(sources, pipeline), encoding="utf-8")
    if output == "csv":
        click.echo(to_csv(sources), nl=False)
    elif output == "json":
        click.echo(to_json(sources, pipeline))
    else:
        _print_report(sources, pipeline, kind)
    if html_path:
        click.echo(f"HTML report: {html_path.resolve()}", err=output != "table")


def _print_report(sources, pipeline, kind: str) -> None:
    from sync.reports.build import source_rows

    console = Console(width=max(Console().width, 160))  # wide tables: don't squeeze them into 80 columns
    if kind == "pipeline":
        table = Table(title=f"Pipeline by stage and first-click channel ({pipeline.currency})", title_justify="left")
        table.add_column("channel")
        for stage in pipeline.stages:
            table.add_column(stage, justify="right")
        for channel in sorted({c for c, _ in pipeline.cells}):
            cells = [pipeline.cells.get((channel, stage)) for stage in pipeline.stages]
            table.add_row(channel, *[f"{c[0]} · {c[1]:,.0f}" if c else "–" for c in cells])
        console.print(table)
        return
    table = Table(title=f"Revenue by source — {sources.model.replace('_', ' ')} model ({sources.currency})",
                  title_justify="left")
    for column in ("channel", "source", "campaign", "keyword"):
        table.add_column(column, overflow="fold")
    for column in ("visitors", "leads", "form", "call", "chat", "opps", "won", "revenue", "v→lead", "ROAS"):
        table.add_column(column, justify="right")
    for row in source_rows(sources):
        rate = row["visitor_to_lead"]
        table.add_row(row["channel"], row["source"], row["campaign"], row["term"], str(row["visitors"]),
                      str(row["leads"]), str(row["form"]), str(row["call"]), str(row["chat"]),
                      str(row["opportunities"]), str(row["won"]), f"{Decimal(row['revenue']):,.2f}",
                      "–" if rate is None else f"{rate:.1%}", row["roas"] or "–")
    console.print(table)
    for currency, value in sources.other_currencies.items():
        console.print(f"also {value:,.2f} {currency} of won revenue in {currency} (not converted)")


@main.group()
def spend() -> None:
    """Ad spend for ROI and ROAS in the source report."""


@spend.command("import")
@config_option
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def spend_import(config_path: Path | None, path: Path) -> None:
    """Import ad spend from a CSV file (date, channel and/or source, campaign, cost, currency)."""
    from sync.reports.spend import import_spend, parse_spend

    config, store = boot(config_path, remote=False)
    rows = parse_spend(path)
    with store.session() as session:
        count = import_spend(session, rows)
    total = sum((row.cost for row in rows), Decimal(0))
    click.echo(f"imported {count} spend row(s), {total:,.2f} in total, from {path}")


@main.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path(".closedloop-demo"), show_default=True,
              help="Where the demo keeps its config, state database and report (emptied first).")
@click.option("--people", default=400, show_default=True, help="How many simulated buyers visit the site.")
@click.option("--seed", default=7, show_default=True, help="Random seed: the same seed, the same demo.")
def demo(directory: Path, people: int, seed: int) -> None:
    """See the whole loop close locally: sandbox CRMs and GA4, synthetic traffic, the daemon's jobs."""
    from sync.demo import run_demo

    configure_logging("WARNING", "text")
    run_demo(directory, people=people, seed=seed)


def _ago(now: datetime, then: datetime) -> str:
    seconds = int((now - then).total_seconds())
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return then.strftime("%Y-%m-%d %H:%M")


if __name__ == "__main__":  # pragma: no cover
    main()
