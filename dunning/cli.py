"""The ``dunning`` command: run the service's processes and the operators' tools."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from dunning.admin.cli import keys_app
from dunning.backtest.cli import backtest as backtest_command
from dunning.cases.cli import app as cases_app
from dunning.embedded import stop_services
from dunning.notify.cli import email_app
from dunning.policy.cli import policy_app
from dunning.reports.cli import report_app
from dunning.settings import RUN_ENV_FILE, Settings, get_settings
from dunning.startup import VERBOSE_ENV, celery_flags, log_level, setup

app = typer.Typer(help="Dunning and involuntary-churn recovery service.", no_args_is_help=True)
events_app = typer.Typer(help="Stored processor events.", no_args_is_help=True)
app.add_typer(events_app, name="events")
app.add_typer(policy_app, name="policy")
app.add_typer(keys_app, name="keys")
app.add_typer(cases_app, name="cases")
app.add_typer(report_app, name="report")
app.add_typer(email_app, name="email")
app.command("backtest")(backtest_command)


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log at INFO level, not only warnings.")
    ] = False,
) -> None:
    """Dunning and involuntary-churn recovery service."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    setup()
    from dunning.migrate import upgrade

    url = get_settings().database_url
    assert url
    upgrade(url)
    typer.echo("database schema is up to date")


@app.command()
def web() -> None:
    """Serve the HTTP API and the webhook endpoint."""
    setup()
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "dunning.app:serve_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.web_concurrency,
        log_level="warning",
    )


@app.command()
def worker() -> None:
    """Run a Celery worker that applies events and performs actions."""
    setup()
    from workers.celery_app import app as celery

    settings = get_settings()
    os.nice(settings.worker_nice)  # intake first: see Settings.worker_nice
    celery.worker_main(
        [
            *celery_flags(),
            "worker",
            f"--loglevel={log_level()}",
            f"--concurrency={settings.worker_concurrency}",
        ]
    )


@app.command()
def beat() -> None:
    """Run the periodic scheduler (sweepers and the reconciler)."""
    setup()
    from workers.celery_app import app as celery

    schedule = Path(get_settings().data_dir) / "celerybeat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    celery.start([*celery_flags(), "beat", f"--loglevel={log_level()}", f"--schedule={schedule}"])


@app.command()
def run() -> None:
    """Run everything on one machine: migrations, web, worker and beat (and the demo)."""
    started = setup()
    settings = get_settings()
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        _run_all(settings, data_dir)
    finally:
        (data_dir / RUN_ENV_FILE).unlink(missing_ok=True)
        stop_services(started, data_dir)


def _run_all(settings: Settings, data_dir: Path) -> None:
    env = dict(os.environ)
    children: list[subprocess.Popen[bytes]] = []
    demo = settings.demo and not settings.stripe_api_key
    if demo:
        from dunning import demo as sandbox

        children.append(sandbox.start_sandbox(data_dir))
        api_base = f"http://127.0.0.1:{sandbox.SANDBOX_PORT}"
        secret = sandbox.webhook_secret(data_dir)
        env.update(
            DUNNING_STRIPE_API_KEY=sandbox.DEMO_API_KEY,
            DUNNING_STRIPE_API_BASE=api_base,
            DUNNING_STRIPE_WEBHOOK_SECRETS=",".join([secret, *settings.stripe_webhook_secrets]),
            DUNNING_RECONCILE_INTERVAL_SECONDS=env.get("DUNNING_RECONCILE_INTERVAL_SECONDS", "30"),
        )
        sandbox.register_webhook(
            api_base, f"http://{settings.host}:{settings.port}/webhooks/stripe", secret
        )
    if demo and not settings.smtp_host and settings.email_backend == "smtp":
        children.append(_start_email_sink(settings, data_dir, env))
    _share_env(data_dir, env)
    subprocess.run([sys.executable, "-m", "dunning.cli", "migrate"], env=env, check=True)
    for role in ("web", "worker", "beat"):
        children.append(subprocess.Popen([sys.executable, "-m", "dunning.cli", role], env=env))
    _wait_for_web(settings.host, settings.port)
    if demo:
        created = sandbox.seed(api_base)
        typer.echo(f"demo sandbox at {api_base}: {created} new demo customers; one card fails")
        from workers.celery_app import app as celery

        celery.send_task("workers.tasks.reconcile")  # the sandbox sends no failure webhooks
    typer.echo(f"dunning service on http://{settings.host}:{settings.port} (Ctrl-C to stop)")
    _supervise(children)


def _share_env(data_dir: Path, env: dict[str, str]) -> None:
    """Write what this run adds to the environment where other commands read it."""
    added = {k: v for k, v in env.items() if k.startswith("DUNNING_") and os.environ.get(k) != v}
    lines = [f"{key}={value}" for key, value in sorted(added.items())]
    (data_dir / RUN_ENV_FILE).write_text("\n".join(lines) + "\n")


def _start_email_sink(
    settings: Settings, data_dir: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """The demo's local SMTP sink; the workers send to it and /outbox shows what it got."""
    from dunning.notify.sink import outbox_dir

    port = settings.smtp_sink_port
    log = (data_dir / "email-sink.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dunning.notify.sink",
            "--port",
            str(port),
            "--dir",
            str(outbox_dir(data_dir)),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    env.update(
        DUNNING_SMTP_HOST="127.0.0.1",
        DUNNING_SMTP_PORT=str(port),
        DUNNING_SMTP_STARTTLS="false",
        DUNNING_EMAIL_SINK="true",
    )
    typer.echo(
        f"demo emails go to a local sink on 127.0.0.1:{port}: "
        f"open http://{settings.host}:{settings.port}/outbox"
    )
    return proc


def _wait_for_web(host: str, port: int) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://{host}:{port}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("the web process did not start")


def _supervise(children: list[subprocess.Popen[bytes]]) -> None:
    """Wait until Ctrl-C or a child dies, then stop every child."""
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop and all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()


@app.command()
def reconcile() -> None:
    """Ask the processor for failures the webhooks missed, once, now."""
    setup()
    from dunning.events import reconcile as reconciler
    from dunning.processors.stripe_adapter import StripeAdapter

    stored = reconciler.reconcile(StripeAdapter.from_settings(get_settings()))
    typer.echo(f"{stored} missed events stored")


@events_app.command("replay")
def replay(
    failed: Annotated[
        bool, typer.Option("--failed", help="only events whose handling failed")
    ] = False,
    since: Annotated[
        datetime | None, typer.Option(help="only events received at or after this time")
    ] = None,
) -> None:
    """Apply stored events again (safe: applying is idempotent)."""
    setup()
    from dunning.events import service

    ids = service.reset_for_replay(failed_only=failed, since=since)
    counts = service.handle_events(ids)
    typer.echo(f"replayed {len(ids)} events: {counts}")


if __name__ == "__main__":
    app()
