"""The ``closedloop`` command line.

Every command takes ``--config PATH`` (default ``./closedloop.toml``, else the built-in
defaults). Failures exit non-zero with a one-line reason on stderr: 2 for a configuration
or schema problem someone must fix, 1 for anything else (a job failed, a remote refused).
"""
from __future__ import annotations

import json
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import func
from sqlmodel import select

from adapters.errors import ClosedloopError, ConfigError
from state import SchemaOutdated, StateUnavailable, Store
from state.models import ApiBudget, Cursor, DeadLetter, JobRun, OutboxEvent
from sync.config import Config, load_config
from sync.ops.logs import configure_logging, json_logging, redact
from sync.reports.safe_text import cell, markup, plain

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
    """Turns every error into a one-line reason and an exit status: no traceback, unless
    ``--debug`` is given (on stderr) or the log is JSON (in the log, as a JSON line)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (ConfigError, SchemaOutdated) as exc:
            _fail(str(exc), EXIT_CONFIG, exc)
        except ClosedloopError as exc:
            _fail(exc.user_message, EXIT_FAILED, exc)
        except StateUnavailable as exc:
            _fail(str(exc), EXIT_FAILED, exc)
        except OSError as exc:
            _fail(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", EXIT_FAILED, exc)
        except Exception as exc:  # a bug or an unclassified library error: still one line by default
            first = (str(exc).strip().splitlines() or [""])[0]
            _fail(f"unexpected {type(exc).__name__}: {first} (run with --debug for the traceback)", EXIT_FAILED, exc)


def _fail(message: str, status: int, error: BaseException | None = None) -> None:
    if error is not None:
        _trace(error)
    lines = [plain(line) for line in redact(message).splitlines()] or ["failed"]  # remote text is data
    if len(lines) == 1:
        click.echo(f"closedloop: error: {lines[0]}", err=True)
    else:
        click.echo(f"closedloop: error: {len(lines)} problems:", err=True)
        for line in lines:
            click.echo(f"  {line}", err=True)
    sys.exit(status)


def _trace(error: BaseException) -> None:
    """The traceback of ``error``: on stderr under ``--debug``, in the log when it is JSON lines."""
    context = click.get_current_context(silent=True)
    debug = bool(context and (context.find_root().params or {}).get("debug"))
    if debug:
        import traceback

        click.echo(redact("".join(traceback.format_exception(error))), err=True, nl=False)
    elif json_logging():
        log.error("%s", getattr(error, "user_message", None) or error, exc_info=error)


config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Config file (default: ./closedloop.toml if present, else built-in defaults).")


def load(config_path: Path | None, *, remote: bool = True) -> Config:
    """Load the config and set up logging. ``remote=False`` for commands that never call a CRM
    or GA4: their secrets need not be in the environment."""
    config = load_config(config_path, require_secrets=remote)
    configure_logging(config.settings.logging.level, config.settings.logging.format, config.secret_values())
    return config


def boot(config_path: Path | None, *, check_schema: bool = True, remote: bool = True,
         create: bool = False) -> tuple[Config, Store]:
    """:func:`load`, then open the store (checking its schema). Only ``migrate`` creates a
    SQLite database that does not exist yet. Connections are labelled with the command and
    process id (``application_name`` on PostgreSQL)."""
    config = load(config_path, remote=remote)
    context = click.get_current_context(silent=True)
    store = Store(config.database_url, create=create,
                  name=f"closedloop {context.info_name if context else ''} {os.getpid()}")
    if check_schema:
        store.check_schema()
    return config, store


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="closedloop")
@click.option("--debug", is_flag=True, envvar="CLOSEDLOOP_DEBUG", help="On failure, print the traceback too.")
def main(debug: bool) -> None:
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
    for outcome in outcomes:
        click.echo(f"{outcome.job}: {outcome.outcome} (read {outcome.result.records_read}, "
                   f"wrote {outcome.result.records_written}, {outcome.seconds:.1f}s)"
                   + (f": {plain(outcome.error)}" if outcome.error else ""))
    problems = _run_problems(outcomes)
    if problems:
        _fail("\n".join(problems), EXIT_FAILED)


def _run_problems(outcomes) -> list[str]:
    """Why a ``run --once`` did not do all its work: jobs that failed, records and events set
    aside in this run, remotes paused because they refused us or were down (an allowance
    pause is closedloop keeping to its share, not a failure)."""
    problems = []
    failed = [outcome for outcome in outcomes if not outcome.succeeded]
    if failed:
        problems.append(f"{len(failed)} job(s) failed: " + "; ".join(f"{o.job}: {o.error}" for o in failed))
    dead = sum(outcome.result.dead_letters for outcome in outcomes)
    if dead:
        problems.append(f"{dead} record(s) or event(s) were dead-lettered in this run: see why with "
                        "`closedloop dead-letters list`")
    waiting = {}
    for outcome in outcomes:
        for run in outcome.result.remotes.values():
            if run.status in ("paused", "skipped") and run.state and run.state.reason in ("auth", "down"):
                waiting[run.name] = run
    problems += [f"{run.describe()} — its work waits (`closedloop status`)" for run in waiting.values()]
    return problems


@main.command()
@config_option
def collector(config_path: Path | None) -> None:
    """Serve only the collector (to scale it out separately from the jobs). SIGTERM or SIGINT
    stops it cleanly (queued beacons are stored first) and it exits 0."""
    import signal
    import threading

    from sync.capture.app import create_app
    from sync.capture.server import BackgroundServer
    from sync.jobs import job_intervals
    from sync.ops.runtime import settle_gc

    config, store = boot(config_path, remote=False)
    settings, admin = config.settings.collector, config.settings.admin
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # uvicorn.run would re-raise the signal after its own shutdown (exit 143); closedloop owns them.
    app = create_app(config, store, job_intervals=job_intervals(config))
    servers = [BackgroundServer(app, settings.host, settings.port, trusted_proxies=settings.trusted_proxies).start()]
    if admin.port is not None:  # /healthz and /metrics on their own listener
        servers.append(BackgroundServer(app.state.admin.app(), admin.host, admin.port).start())
    settle_gc()  # after start-up: keeps the collector's tail latency low (see sync/ops/runtime.py)
    log.info("collector listening on http://%s:%d", servers[0].host, servers[0].port)
    while not stop.wait(1.0):
        if not all(server.alive for server in servers):
            _fail(f"the collector on {settings.host}:{settings.port} stopped unexpectedly", EXIT_FAILED)
    for server in reversed(servers):
        server.stop()
    log.info("collector stopped cleanly")


@main.command()
@config_option
def migrate(config_path: Path | None) -> None:
    """Create or upgrade the state database schema."""
    config, store = boot(config_path, check_schema=False, remote=False, create=True)
    before, after = store.migrate()
    if before == after:
        click.echo(f"state schema is up to date ({after}) in {store.safe_url}")
    else:
        click.echo(f"migrated {store.safe_url} from {before or 'empty'} to {after}")


@main.command()
@config_option
def check(config_path: Path | None) -> None:
    """Check the config, the state database, CRM credentials, every field mapping against the
    CRM's live metadata, and the ad platforms' conversion actions and tokens. Each remote is
    tried once, with a short timeout; what failed is said in one line per remote (retrying is
    the daemon's job)."""
    from sync.ops.connections import Connections

    config, store = boot(config_path, check_schema=False)
    click.echo(f"config: ok ({config.source})")
    store.check_schema()
    click.echo(f"state: ok ({store.safe_url}, schema {store.current_revision()})")
    connections = Connections(config, attempts=1, timeout=CHECK_TIMEOUT)
    # Every remote is asked at once (each within CHECK_TIMEOUT), so a remote that never answers
    # costs one timeout, not one per remote; what each says is printed in a fixed order.
    checks = [lambda crm=crm: _check_remote(config, store, connections, crm) for crm in connections.enabled_crms()]
    if config.settings.google_ads.enabled or config.settings.meta.enabled:
        checks.append(lambda: _check_destinations(config, connections))
    with ThreadPoolExecutor(max_workers=max(1, len(checks)), thread_name_prefix="check") as pool:
        futures = [pool.submit(work) for work in checks]
    problems: list[str] = []
    unreachable = False
    for future in futures:
        lines, found, down = future.result()
        for line in lines:
            click.echo(line)
        problems += found
        unreachable |= down
    if config.settings.ga4.enabled:
        connections.ga4()
        click.echo(f"ga4: configured for {config.settings.ga4.measurement_id} at {config.settings.ga4.endpoint} "
                   "(the Measurement Protocol cannot verify a secret; try `closedloop ga4 validate`)")
    if problems:
        if unreachable:  # not a config mistake for sure: the remote may just be down
            _fail("\n".join(problems), EXIT_FAILED)
        raise ConfigError("\n".join(problems))


def _check_remote(config: Config, store: Store, connections, crm: str) -> tuple[list[str], list[str], bool]:
    """(lines to print, problems, whether the CRM was out of reach) for one CRM: credentials,
    mapping, trigger."""
    try:
        lines, problems = _check_crm(connections, crm, store)
        trigger_lines, found = _check_trigger(config, store, connections, crm)
        return lines + trigger_lines, problems + found, False
    except ConfigError as exc:
        return [], [f"{crm}: {exc.user_message}"], False
    except ClosedloopError as exc:
        return [], [f"{crm}: {exc.user_message}"], True


def _check_destinations(config: Config, connections) -> tuple[list[str], list[str], bool]:
    from sync.jobs.readback import check_destinations

    fine, found = check_destinations(config, connections, datetime.now(timezone.utc))
    return fine, found, False


def _check_trigger(config: Config, store: Store, connections, crm: str) -> tuple[list[str], list[str]]:
    """(lines, problems) about the CRM's trigger: change events or webhooks, or none configured."""
    settings = getattr(config.settings, crm)
    if crm == "salesforce" and settings.change_events:
        from sync.jobs.cdc import check_change_events

        return check_change_events(config, connections)
    if crm == "hubspot" and settings.webhooks:
        from sync.jobs.webhooks import check_webhooks

        return check_webhooks(config, store, connections)
    how = "[salesforce] change_events = true" if crm == "salesforce" else "[hubspot] webhooks = true"
    return [f"{crm}: no trigger, polling every {config.settings.schedule.enrich_seconds:g} s (set {how} to hear "
            "about changes within seconds)"], []


CHECK_TIMEOUT = 5.0  # seconds per remote call in `check`: it answers within seconds even when a remote is down


def _check_crm(connections, crm: str, store: Store) -> tuple[list[str], list[str]]:
    """Log in to ``crm`` once and check its mapping against the live metadata; a CRM paused
    because it refused the credentials is resumed once they work again. (lines, problems)"""
    from mappings.check import SUPPORTED_OBJECTS, check_against_crm
    from sync.journey.variables import ENUMERATIONS, WHOLE_LENGTHS, catalogue
    from sync.ops.remotes import Remotes

    mapping = connections.mapping(crm)
    adapter = connections.adapter(crm)
    describe = {name: adapter.describe_fields(name) for name in mapping.objects
                if name in SUPPORTED_OBJECTS[crm]}  # an unknown (misspelt) object is reported by line
    remotes = Remotes(store)
    lines = []
    if remotes.state(crm).reason == "auth":
        remotes.resume(crm)
        lines.append(f"{crm}: the credentials work again: its pause is lifted")
    found = check_against_crm(mapping, describe, catalogue(), ENUMERATIONS, WHOLE_LENGTHS)
    fields = sum(len(o.fields) for o in mapping.objects.values())
    lines.append(f"{crm}: credentials ok; mapping {mapping.path}: {fields} fields, "
                 + ("ok" if not found else f"{len(found)} problem(s)"))
    return lines, found


@main.group()
def fields() -> None:
    """CRM custom fields for the mapped variables."""


@fields.command("create")
@config_option
@click.option("--force", is_flag=True,
              help="Also create fields whose names are close to existing ones (when both are really meant).")
def fields_create(config_path: Path | None, force: bool) -> None:
    """Create the custom fields/properties the mappings need; never changes existing ones.
    A name that looks like a typo of an existing field is not created (see --force)."""
    from sync.jobs.fields import doubtful_fields, missing_fields
    from sync.ops.connections import Connections

    config = load(config_path)
    connections = Connections(config)
    if not connections.enabled_crms():
        raise ConfigError(f"{config.source}: no CRM is enabled ([salesforce] or [hubspot] enabled = true)")
    refused: list[str] = []
    for crm in connections.enabled_crms():
        adapter, mapping = connections.adapter(crm), connections.mapping(crm)
        needed = missing_fields(crm, mapping, adapter.describe_fields, force=force)
        created = adapter.ensure_fields(needed) if needed else []
        for name in created:
            click.echo(f"{crm}: created {name}")
        doubtful = doubtful_fields(crm, mapping, adapter.describe_fields, force=force)
        click.echo(f"{crm}: {len(created)} field(s) created"
                   + (f", {len(doubtful)} left alone (below)" if doubtful else "")
                   + f"; {sum(len(o.fields) for o in mapping.objects.values()) - len(created) - len(doubtful)} "
                   "mapped field(s) already existed")
        refused += doubtful
    if refused:
        raise ConfigError("\n".join(refused))


@main.command()
@config_option
@click.option("--wide", is_flag=True, help="Every column, however wide the terminal.")
def status(config_path: Path | None, wide: bool) -> None:
    """Show each job's last run, outcome, cursor, backlog and dead letters; triggers and remotes."""
    from sync.jobs import registry
    from sync.reports.terminal import Column, show

    config, store = boot(config_path, remote=False)
    console = Console()
    rows, notes = [], []
    now = datetime.now(timezone.utc)
    with store.session(readonly=True) as session:
        for job_class in registry():
            run = session.exec(select(JobRun).where(JobRun.job == job_class.name)
                               .order_by(JobRun.started_at.desc(), JobRun.id.desc()).limit(1)).first()
            cursors = session.exec(select(Cursor).where(Cursor.stream.startswith(f"{job_class.name}:"))).all()
            dead = session.exec(select(func.count()).select_from(DeadLetter)
                                .where(DeadLetter.job == job_class.name, DeadLetter.status == "open")).one()
            backlog = job_class.backlog(session)
            rows.append({
                "job": job_class.name + ("" if job_class.enabled(config) else " (disabled)"),
                "last run": _ago(now, run.started_at) if run else "never",
                "outcome": run.outcome if run else "-",
                "took": f"{(run.finished_at - run.started_at).total_seconds():.1f}s"
                        if run and run.finished_at else "-",
                "read": str(run.records_read) if run else "-",
                "wrote": str(run.records_written) if run else "-",
                "cursor": Text("\n").join(cell(f"{c.crm} {c.stream.split(':', 1)[1]} {_cursor_position(now, c.value)}")
                                          for c in cursors) or cell("-"),
                "backlog": "-" if backlog is None else str(backlog),
                "dead letters": str(dead)})
            if run and run.outcome in ("failed", "paused") and run.message:
                notes.append(f"{job_class.name}: {run.message}")
    show(console, f"closedloop status — {store.safe_url}", [
        Column("job", lambda r: r["job"], 8, 1), Column("last run", lambda r: r["last run"], 8, 1),
        Column("outcome", lambda r: r["outcome"], 7, 1), Column("took", lambda r: r["took"], 4, 3, True),
        Column("read", lambda r: r["read"], 4, 2, True), Column("wrote", lambda r: r["wrote"], 5, 2, True),
        Column("cursor (last change read)", lambda r: r["cursor"], 14, 1),
        Column("backlog", lambda r: r["backlog"], 7, 2, True),
        Column("dead letters", lambda r: r["dead letters"], 4, 1, True)], rows, wide=wide)
    _print_triggers(console, config, store, now, wide=wide)
    with store.session(readonly=True) as session:
        open_dead = session.exec(select(DeadLetter.job, func.count()).where(DeadLetter.status == "open")
                                 .group_by(DeadLetter.job)).all()
    if open_dead:
        console.print("[yellow]dead letters[/yellow] " + ", ".join(f"{markup(job)}: {count}" for job, count in open_dead)
                      + " open — `closedloop dead-letters list`", highlight=False)
    for note in notes:
        console.print(f"[red]last failure[/red] {markup(note)}", highlight=False)
    console.print(_remotes_table(config, store, now))


def _remotes_table(config: Config, store: Store, now: datetime) -> Table:
    """Per remote: paused or not (and until when), allowance used, last error."""
    from sync.ops.remotes import Remotes

    with store.session(readonly=True) as session:
        budgets = {budget.system: budget for budget in session.exec(select(ApiBudget)).all()}
    enabled = [name for name in ("salesforce", "hubspot", "ga4") if getattr(config.settings, name).enabled]
    table = Table(title="remotes", title_justify="left")
    for column in ("remote", "state", "allowance used", "last error", "paused until"):
        table.add_column(column, overflow="fold", no_wrap=column in ("remote", "state"))
    for remote in Remotes(store).states([*enabled, *budgets]):
        budget = budgets.get(remote.name)
        state = f"[red]paused: {remote.reason}[/red]" if remote.paused else "[green]ok[/green]"
        allowance = (f"{budget.used}/{budget.total} ({budget.used / budget.total:.0%}; pauses at {budget.share:.0%}), "
                     f"{_ago(now, budget.updated_at)}") if budget and budget.total and budget.used is not None else "-"
        error = cell(f"{remote.message} ({_ago(now, remote.last_error_at)})") if remote.message and remote.last_error_at \
            else "-"
        until = f"{remote.paused_until:%Y-%m-%d %H:%M:%S} UTC" if remote.paused and remote.paused_until else "-"
        table.add_row(remote.name, state, allowance, error, until)
    return table


def _print_triggers(console: Console, config: Config, store: Store, now: datetime, *, wide: bool = False) -> None:
    """Per CRM: its trigger channels (connected or not, last event, replay position or last
    webhook, lag, queued ids), or that it is polled only."""
    from sync.jobs.triggers import trigger_status
    from sync.ops.connections import Connections

    connections = Connections(config)
    rows = trigger_status(store, config, connections, now)
    for crm in connections.enabled_crms():
        if not any(row.crm == crm for row in rows):
            console.print(f"[yellow]trigger[/yellow] {crm}: none, polled every "
                          f"{config.settings.schedule.enrich_seconds:g} s", highlight=False)
    if not rows:
        return
    from sync.reports.terminal import Column, show

    def where(row) -> str:
        if row.position and row.position_at:
            return f"{row.position} ({_ago(now, row.position_at)})"
        return row.position or ("-" if row.last_event_at is None else f"last webhook {_ago(now, row.last_event_at)}")

    show(console, "triggers", [
        Column("crm", lambda r: r.crm, 7, 1), Column("channel", lambda r: r.channel, 10, 1),
        Column("state", lambda r: cell(r.state, "green" if r.state in ("connected", "listening") else "red"), 7, 1),
        Column("last event", lambda r: _ago(now, r.last_event_at) if r.last_event_at else "never", 8, 2),
        Column("position / last webhook", lambda r: where(r), 10, 3),
        Column("lag", lambda r: "-" if r.lag_seconds is None else f"{r.lag_seconds:.1f}s", 3, 2, True),
        Column("queued", lambda r: str(r.queued), 6, 1, True)], rows, wide=wide)
    for row in rows:
        if row.message and row.state not in ("connected", "listening"):
            console.print(f"[red]trigger[/red] {markup(row.crm)} {markup(row.channel)}: {markup(row.message)}",
                          highlight=False)


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
    except StopRequested:  # asked to stop (SIGTERM, Ctrl-C): a clean stop is a success
        console.print("backfill stopped after the current page; every page up to it is saved: run the same "
                      "command again to resume", highlight=False)
        return
    except KeyboardInterrupt:
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
        click.echo(plain(f"#{row.id}  {_ago(now, row.created_at)}  {row.job}  {row.crm} {row.object} {row.record_id}  "
                         f"{row.code}  [{row.status}]"))
        click.echo(f"    {plain(row.message)}")
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
@click.argument("who")
@click.option("--wide", is_flag=True, help="Show every column, however narrow the terminal.")
def explain(config_path: Path | None, who: str, wide: bool) -> None:
    """Explain one person: WHO is a visitor id, an email, or a Salesforce/HubSpot record id
    (lead, contact, opportunity, deal). Prints their devices, every session with the channel
    rule it matched, and each CRM record's variables with the value last written and when."""
    from sync.journey.hits import journey_settings
    from sync.ops.connections import Connections
    from sync.reports.explain import explain_person
    from sync.reports.terminal import print_explanation

    config, store = boot(config_path, remote=False)
    with store.session(readonly=True) as session:
        found = explain_person(session, who, journey_settings(config))
    connections = Connections(config)
    variables: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for crm in {record.crm for record in found.records}:
        try:
            mapping = connections.mapping(crm)
        except ClosedloopError as exc:  # still show what was written, field by field
            log.warning("cannot name the variables of %s fields: %s", crm, exc)
            continue
        for name, objects in mapping.objects.items():
            variables[(crm, name)] = [(item.variable, item.field) for item in objects.fields]
    print_explanation(Console(), found, variables, wide=wide)


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".sandbox"),
              show_default=True, help="Where the emulators keep their TLS files and keys, and the config and "
                                      "state database for closedloop go.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", "ports", type=int, nargs=3, default=(8701, 8702, 8703), show_default=True,
              help="Ports for Salesforce (HTTPS), HubSpot and GA4.")
@click.option("--collector-port", type=click.IntRange(1, 65535), default=8700, show_default=True,
              help="The port the written config gives closedloop's collector.")
@click.option("--seed", "people", type=click.IntRange(min=0), default=36, show_default=True,
              help="How many simulated buyers visit the site once `closedloop run` is up (0: none).")
def sandbox(data_dir: Path, host: str, ports: tuple[int, int, int], collector_port: int, people: int) -> None:
    """Run local emulators of Salesforce, HubSpot, GA4, Google Ads and Meta until Ctrl-C, write a
    config for them, and say how to run closedloop against them. With --seed, buyers browse the
    site through the collector, become leads, and win deals, so closedloop has something to do."""
    import shlex
    import signal
    import threading

    from sandbox.seed import SITE_ORIGIN, Seeder
    from sandbox.suite import SandboxSuite

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    suite = SandboxSuite.start(data_dir, host=host, ports=ports)
    config_path = data_dir / "closedloop.toml"
    webhook_port = 8704  # the daemon's webhook receiver ([webhooks] port), where the HubSpot app posts
    config_path.write_text(suite.config(state_url="sqlite:///closedloop.db", collector_port=collector_port,
                                        site_origin=(SITE_ORIGIN, "http://localhost:8000"), config_dir=data_dir,
                                        schedule={"enrich_seconds": 5, "revenue_seconds": 10,
                                                  "lifecycle_seconds": 10},
                                        replay_days=60 if people else 0,  # --seed replays weeks of visits
                                        webhook_port=webhook_port))
    suite.set_webhook_target(f"http://127.0.0.1:{webhook_port}/hubspot/webhooks")
    config = shlex.quote(str(config_path))
    click.echo(f"Salesforce  {suite.salesforce.url}   (login and instance URL; CA {suite.salesforce.ca_path})")
    click.echo(f"HubSpot     {suite.hubspot.url}")
    click.echo(f"GA4         {suite.ga4.url}   (measurement id {suite.ga4.measurement_id}; Data API property "
               f"{suite.ga4.property_id})")
    click.echo(f"Google Ads  {suite.google_ads.url}   (Data Manager API; OAuth at {suite.google_oauth.token_uri})")
    click.echo(f"Meta        {suite.meta.url}   (Conversions API)")
    click.echo(f"Triggers    Salesforce change events at {suite.pubsub_endpoint}; HubSpot webhooks to "
               f"http://127.0.0.1:{webhook_port}/hubspot/webhooks")
    click.echo(f"\nA config pointing at them: {config_path}\nIn another terminal, from any folder, run:\n")
    for name, value in suite.environment().items():
        click.echo(f"  export {name}={shlex.quote(value)}")
    click.echo(f"  closedloop migrate --config {config}")
    click.echo(f"  closedloop fields create --config {config}")
    click.echo(f"  closedloop run --config {config}")
    click.echo(f"\nthen, in a third: closedloop report --config {config}   (and status, explain EMAIL, "
               "dead-letters list)")
    stop = threading.Event()
    if people:
        click.echo(f"\nOnce `closedloop run` is up, {people} simulated buyers visit the site through its collector, "
                   "become leads and win deals (--seed 0: none).")
        Seeder(suite, f"http://127.0.0.1:{collector_port}", people=people, seed=17, stop=stop,
               say=lambda line: click.echo(line)).start()
    click.echo("Ctrl-C stops the sandbox.")
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
        ga4_rows = select(OutboxEvent).where(OutboxEvent.destination == "ga4")
        events = session.exec(ga4_rows.where(OutboxEvent.status == "pending")
                              .order_by(OutboxEvent.id).limit(sample)).all() or \
            session.exec(ga4_rows.order_by(OutboxEvent.id.desc()).limit(sample)).all()
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
            click.echo(f"        local: {plain(problem)}")
        for message in remote:
            click.echo(plain(f"        GA4 {message.get('validationCode')}: {message.get('fieldPath', '')} "
                             f"{message.get('description')}"))
    click.echo(f"{len(events) - problems} of {len(events)} event(s) valid")
    if problems:
        raise ClosedloopError(f"{problems} event(s) would be rejected or dropped by GA4")


@main.command()
@config_option
@click.argument("kind", type=click.Choice(["source", "pipeline"]), default="source")
@click.option("--model", type=click.Choice(["first_click", "last_click", "linear", "time_decay", "position",
                                            "w_shaped"]), default="first_click", show_default=True,
              help="How revenue is shared among a deal's touches.")
@click.option("--half-life", "half_life", type=click.FloatRange(min=0, min_open=True), default=7.0,
              show_default=True, help="Days; for the time_decay model.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="First day (UTC) of the period: visitors by first visit, leads and opportunities by creation, "
                   "won deals by close date.")
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Last day (UTC) of the period, included.")
@click.option("--format", "output", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--wide", is_flag=True, help="Show every column, however narrow the terminal.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a self-contained HTML report with charts to this file.")
def report(config_path: Path | None, kind: str, model: str, half_life: float, since, until, output: str, wide: bool,
           html_path: Path | None) -> None:
    """Revenue and pipeline by channel, source, campaign and keyword."""
    from datetime import timedelta

    from sync.journey.hits import journey_settings
    from sync.reports.build import pipeline_report, source_report, to_csv, to_json
    from sync.reports.reconcile import conversion_counts
    from sync.reports.terminal import print_conversions, print_pipeline, print_source_report

    today = datetime.now(timezone.utc).date()
    if since and until and since > until:
        _fail(f"--since {since:%Y-%m-%d} is after --until {until:%Y-%m-%d}: the period would be empty", EXIT_CONFIG)
    if since and since.date() > today:
        _fail(f"--since {since:%Y-%m-%d} is in the future: the period holds no data yet", EXIT_CONFIG)
    config, store = boot(config_path, remote=False)
    since = since.replace(tzinfo=timezone.utc) if since else None
    until = until.replace(tzinfo=timezone.utc) + timedelta(days=1) if until else None
    settings = journey_settings(config)
    with store.session(readonly=True) as session:
        sources = source_report(session, settings, model=model, half_life=timedelta(days=half_life), since=since,
                                until=until)
        pipeline = pipeline_report(session, settings, since=since, until=until)
        conversions = conversion_counts(session, since, until)
    if html_path:
        from sync.reports.html import render_html

        html_path.write_text(render_html(sources, pipeline), encoding="utf-8")
    if output == "csv":
        click.echo(to_csv(sources), nl=False)
    elif output == "json":
        click.echo(json.dumps({**json.loads(to_json(sources, pipeline)), "ad_conversions": conversions}, indent=2))
    else:
        if kind == "pipeline":
            print_pipeline(Console(), pipeline, wide=wide)
        else:
            print_source_report(Console(), sources, wide=wide)
        print_conversions(Console(), conversions, wide=wide)
    if html_path:
        click.echo(f"HTML report: {html_path.resolve()}", err=output != "table")


@main.command()
@config_option
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="From this day (UTC); default 30 days ago.")
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, help="Up to this day (UTC); default today.")
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--wide", is_flag=True, help="Every column, however wide the terminal.")
def reconcile(config_path: Path | None, since, until, output: str, wide: bool) -> None:
    """Won revenue and stages in the CRM beside what closedloop sent and what GA4 and Google Ads received,
    every difference explained."""
    from datetime import timedelta

    from sync.jobs.readback import read_back
    from sync.journey.hits import journey_settings
    from sync.ops.connections import Connections
    from sync.reports.reconcile import reconcile as build
    from sync.reports.terminal import print_reconcile

    if since and until and since > until:
        _fail(f"--since {since:%Y-%m-%d} is after --until {until:%Y-%m-%d}: the period would be empty", EXIT_CONFIG)
    config, store = boot(config_path, remote=False)  # a destination whose secret is missing is noted, not fatal
    today = datetime.now(timezone.utc).date()
    start = since.date() if since else today - timedelta(days=30)
    end = until.date() if until else today
    readback = read_back(config, Connections(config), store, start, end)
    actions = {stage: c.conversion_action_id for stage, c in config.settings.google_ads.conversions.items()}
    with store.session(readonly=True) as session:
        result = build(session, journey_settings(config), start, end, readback, stage_actions=actions,
                       ga4_delay_hours=config.settings.ga4.data_api.processing_delay_hours)
    if output == "json":
        click.echo(json.dumps(result.as_json(), indent=2))
        return
    print_reconcile(Console(), result, wide=wide)


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
              help="Where the demo keeps its config, state database and report: a new or empty folder, or one "
                   "an earlier demo made (emptied first).")
@click.option("--people", default=400, show_default=True, help="How many simulated buyers visit the site.")
@click.option("--seed", default=7, show_default=True, help="Random seed: the same seed, the same demo.")
def demo(directory: Path, people: int, seed: int) -> None:
    """See the whole loop close locally: sandbox CRMs and GA4, synthetic traffic, the daemon's jobs."""
    from sync.demo import run_demo

    configure_logging("WARNING", "text")
    run_demo(directory, people=people, seed=seed)


def _cursor_position(now: datetime, value: str) -> str:
    """A cursor as an age ("12s ago") when it is a moment, as it is for every polled stream;
    any other position as it is stored."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return _ago(now, moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))


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
