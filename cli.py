"""Operator CLI: run the local stack, provision SIP, and test the assistant.

    python cli.py up | down | status | logs
    python cli.py sip setup | list | teardown | status
    python cli.py calls list | show ID | export
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from calls.command import calls_app, list_messages
from sip import carriers, provisioning
from stack import lifecycle, phone_line
from stack.binaries import TEST_TOOL_PACKAGES, ensure_debian_packages
from stack.components import BY_NAME, LIVEKIT_SIP, log_path, wanted_components
from stack.credentials import (
    ensure_api_credentials,
    ensure_call_webhook_secret,
    ensure_local_openai_key,
    save_env_values,
    weak_secret_warning,
)
from stack.errors import StackError
from stack.settings import Settings, SettingsError

app = typer.Typer(help="Self-hosted AI phone assistant on LiveKit.", no_args_is_help=True, add_completion=False)
sip_app = typer.Typer(help="Provision and inspect the inbound SIP trunk and dispatch rule.", no_args_is_help=True)
app.add_typer(sip_app, name="sip")
kb_app = typer.Typer(help="Check the business's knowledge base ([[faq]] entries).", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
app.add_typer(calls_app, name="calls")
app.command("messages")(list_messages)
# Wide when piped (logs, tests), so tables keep whole IDs and paths.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


@app.callback()
def main_options(
    env_file: Annotated[Path | None, typer.Option(
        help="The .env file to use (default: $PHONE_ENV_FILE, else .env).")] = None,
    run_dir: Annotated[Path | None, typer.Option(
        help="Where pid files, generated configs and logs go (default: $PHONE_RUN_DIR, else .run).")] = None,
):
    # Settings.load() reads these two from the environment, in this process and in every process it starts.
    if env_file:
        os.environ["PHONE_ENV_FILE"] = str(env_file.resolve())
    if run_dir:
        os.environ["PHONE_RUN_DIR"] = str(run_dir.resolve())


# --- the stack -----------------------------------------------------------------------------------------------------
def _save_flags(settings: Settings, values: dict[str, str | None]) -> Settings:
    """Flags given on the command line go into .env, so the next `make run` keeps them, and win for this run."""
    given = {key: value for key, value in values.items() if value is not None}
    if not given:
        return settings
    save_env_values(settings.env_file, **given)
    os.environ.update(given)  # the environment wins over .env; a flag wins over both
    out.print(f"Saved to {settings.env_file}: " + ", ".join(f"{k}={v}" for k, v in given.items()), highlight=False)
    return Settings.load()


@app.command()
def up(
    dev: Annotated[bool, typer.Option(help="Use the insecure devkey/secret credentials.")] = False,
    only: Annotated[list[str] | None, typer.Option(help=f"Start only these: {', '.join(BY_NAME)}.")] = None,
    provision: Annotated[bool, typer.Option(help="Run `sip setup` once the stack is up.")] = True,
    sip_listen_ip: Annotated[str | None, typer.Option(
        help="Address livekit-sip listens on for the carrier (SIP_LISTEN_IP; default 127.0.0.1). Saved to .env.")
    ] = None,
    sip_public_ip: Annotated[str | None, typer.Option(
        help="Address advertised to the carrier, for a host behind 1:1 NAT (SIP_PUBLIC_IP). Saved to .env.")] = None,
    sip_tls_cert: Annotated[str | None, typer.Option(
        help="PEM certificate for SIP over TLS on SIP_TLS_PORT (SIP_TLS_CERT). Saved to .env.")] = None,
    sip_tls_key: Annotated[str | None, typer.Option(
        help="PEM private key for SIP over TLS (SIP_TLS_KEY). Saved to .env.")] = None,
):
    """Install, build and start the whole stack, wait until healthy, and leave it running. Everything listens on
    127.0.0.1 except livekit-sip's SIP and RTP, on SIP_LISTEN_IP (see docs/deploy.md)."""
    settings = Settings.load()
    with lifecycle.exclusive(settings, "up"):  # one `up` at a time: its flags, credentials, start and provisioning
        settings = _save_flags(settings, {
            "SIP_LISTEN_IP": sip_listen_ip, "SIP_PUBLIC_IP": sip_public_ip,
            "SIP_TLS_CERT": sip_tls_cert and str(Path(sip_tls_cert).resolve()),
            "SIP_TLS_KEY": sip_tls_key and str(Path(sip_tls_key).resolve())})
        _up(settings, dev, only, provision)


def _up(settings: Settings, dev: bool, only: list[str] | None, provision: bool) -> None:
    if settings.uses_remote_livekit:
        out.print(f"LIVEKIT_URL is {settings.livekit_url}: using that server, starting no local LiveKit or SIP.")
    else:
        settings, created = ensure_api_credentials(settings, dev=dev)
        if created:
            out.print(f"Generated a LiveKit API key and secret into {settings.env_file} (mode 600).")
        if warning := weak_secret_warning(settings):
            err.print(f"[yellow]warning:[/] {warning}")
    if settings.uses_local_ai:
        settings, created = ensure_local_openai_key(settings)
        if created:
            out.print(f"Generated the local AI endpoint's key (LOCAL_OPENAI_API_KEY) into {settings.env_file}.")
    settings, created = ensure_call_webhook_secret(settings)
    if created:
        out.print(f"Generated the end-of-call webhook's signing key (CALL_WEBHOOK_SECRET) into {settings.env_file}.")
    unknown = [name for name in only or [] if name not in BY_NAME]
    if unknown:
        raise StackError(f"unknown component {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    report = lifecycle.up(settings, only)
    not_provisioned = None
    if provision and not settings.uses_remote_livekit and any(s.name == LIVEKIT_SIP.name for s in report):
        try:
            _run_sip_setup(settings, provisioning.SipConfig.from_settings(settings), dry_run=False)
        except StackError as refused:  # the stack runs; say why the number is not answered yet, after the status
            not_provisioned = refused
    _print_status(report)
    if not_provisioned is not None:
        err.print("[red]error:[/] the stack is up, but the SIP trunk is not provisioned: "
                  f"{escape(str(not_provisioned))}", highlight=False)
        raise typer.Exit(1)
    for item in report:
        if item.name == "playground" and item.up:
            out.print(f"Talk to the agent in a browser: {item.address}")
        if item.name == "livekit-sip" and item.up:
            if settings.sip_exposed:
                out.print(f"The carrier sends calls to {phone_line.sip_uri(settings)} "
                          "(`python cli.py sip setup --carrier ...` prints the carrier-side settings)")
            else:
                out.print(f"Call it: python cli.py call --say \"What are your opening hours?\"  "
                          f"(SIP at {item.address})")


@app.command()
def install(
    test_tools: Annotated[bool, typer.Option(
        help="Also the tools the test suite drives (SIPp, iproute2, PostgreSQL).")] = False,
):
    """Install and build everything the stack runs (Debian packages, livekit-server, livekit-sip), then stop."""
    settings = Settings.load()
    lifecycle.install(settings)
    if test_tools:
        ensure_debian_packages(TEST_TOOL_PACKAGES)
    out.print("Installed: " + ", ".join(c.name for c in wanted_components(settings)))


@app.command()
def down():
    """Stop what `up` started, and nothing else."""
    stopped = lifecycle.down(Settings.load())
    out.print(f"Stopped: {', '.join(stopped)}." if stopped else "Nothing was running.")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False):
    """Each component: up or down, address, version, pid and log file. Exits 1 if any is down."""
    report = lifecycle.status(Settings.load())
    if as_json:
        print(json.dumps([item.__dict__ for item in report], indent=2))
    else:
        _print_status(report)
    if not all(item.up for item in report):
        raise typer.Exit(1)


@app.command()
def logs(
    component: Annotated[str, typer.Argument(help=f"One of: {', '.join(BY_NAME)}.")],
    lines: Annotated[int, typer.Option("--lines", "-n")] = 40,
):
    """Print the end of a component's log."""
    if component not in BY_NAME:
        raise StackError(f"unknown component {component!r}; choose from {', '.join(BY_NAME)}")
    path = log_path(Settings.load(), component)
    if not path.exists():
        raise StackError(f"no log yet at {path}: start it with `python cli.py up`")
    out.print("\n".join(path.read_text(errors="replace").splitlines()[-lines:]), markup=False, highlight=False)


@app.command()
def systemd(
    output: Annotated[Path, typer.Option(help="Folder to write the unit file into.")] = Path("."),
    user: Annotated[str | None, typer.Option(help="The user the stack runs as (default: you).")] = None,
):
    """Write a systemd unit that starts the stack at boot (`cli.py up`) and restarts it if supervisord dies."""
    from stack.systemd import UNIT_NAME, unit

    settings = Settings.load()
    output.mkdir(parents=True, exist_ok=True)
    path = output / UNIT_NAME
    path.write_text(unit(settings, user))
    out.print(f"Wrote {path}. Install it:  sudo cp {path} /etc/systemd/system/ && sudo systemctl daemon-reload && "
              f"sudo systemctl enable --now {UNIT_NAME}", highlight=False, soft_wrap=True)


def _print_status(report: list[lifecycle.ComponentStatus]) -> None:
    table = Table("component", "state", "address", "version", "pid", "log")
    for item in report:
        table.add_row(item.name, f"[{'green' if item.up else 'red'}]{item.state}[/]", item.address, item.version,
                      str(item.pid or "-"), item.log_path)
    out.print(table)
    for item in report:
        if item.problem:
            out.print(escape(item.problem), highlight=False, soft_wrap=True)
    exposed = [(item.name, line) for item in report for line in item.exposed]
    if exposed:
        out.print("Reachable from other hosts (everything else listens on 127.0.0.1 only):", highlight=False)
        for name, line in exposed:
            out.print(f"  {name}: {line}", highlight=False)


# --- SIP -----------------------------------------------------------------------------------------------------------
def _sip_config(settings: Settings, **overrides) -> provisioning.SipConfig:
    """The settings' SIP configuration, with what the command line gives instead (checked by SipConfig.validate)."""
    return dataclasses.replace(provisioning.SipConfig.from_settings(settings),
                               **{name: value for name, value in overrides.items() if value})


def _with_livekit(settings: Settings, operation):
    """`await operation(lk)` against the configured server, its failures turned into one line each."""
    async def run():
        async with provisioning.livekit_api_of(settings) as lk:
            return await operation(lk)

    return asyncio.run(run())


def _exposed_at(settings: Settings) -> str:
    """Where SIP is reachable from other hosts, in words; empty when only this machine reaches it."""
    if settings.uses_remote_livekit:
        return f"the SIP endpoint of {settings.livekit_url}"
    if settings.sip_exposed:
        return phone_line.sip_uri(settings)
    return ""


def _run_sip_setup(settings: Settings, config: provisioning.SipConfig, dry_run: bool) -> None:
    exposed_at = _exposed_at(settings)
    config.validate(exposed_at)
    result = _with_livekit(settings, lambda lk: provisioning.setup(lk, config, dry_run=dry_run, exposed_at=exposed_at))
    title = "Plan (dry run, nothing changed):" if dry_run else "SIP setup:"
    out.print(title)
    for action in result.actions:
        out.print(f"  - {action}")
    out.print(f"trunk {result.trunk_id}  rule {result.rule_id}  numbers {', '.join(config.numbers)}"
              + (f"  outbound trunk {result.outbound_trunk_id}" if result.outbound_trunk_id else ""))
    if exposed_at and config.is_open:
        err.print(f"[yellow]warning:[/] the trunk is open (--allow-open-trunk): anyone who reaches {exposed_at} "
                  "can call it", highlight=False)


def _print_carrier_settings(settings: Settings, carrier: carriers.Carrier, config: provisioning.SipConfig):
    if settings.uses_remote_livekit:
        address, port, transport = "<your LiveKit Cloud SIP host>", 5060, "udp"
    else:
        address = (settings.sip_tls and settings.sip_hostname) or settings.sip_advertised_ip
        port, transport = (settings.sip_tls_port, "tls") if settings.sip_tls else (settings.sip_port, "udp")
    out.print(f"Carrier side ({carrier.title}):", highlight=False)
    for line in carriers.carrier_side_settings(carrier, address, port, transport, config.numbers,
                                               config.auth_username, config.media_encryption, settings.sip_rtp_ports,
                                               config.allowed_addresses):
        out.print(f"  {line}", highlight=False, soft_wrap=True)
    if not settings.sip_exposed and not settings.uses_remote_livekit:
        err.print("[yellow]note:[/] SIP listens on 127.0.0.1, which no carrier reaches: start with "
                  "`python cli.py up --sip-listen-ip <this machine's address>` (docs/deploy.md)", highlight=False)


@sip_app.command("setup")
def sip_setup(
    number: Annotated[list[str] | None, typer.Option(
        help="Number the trunk answers (repeat). Default SIP_NUMBERS.")] = None,
    allowed_address: Annotated[list[str] | None, typer.Option(help="Caller IP/CIDR allowed (repeat).")] = None,
    allowed_number: Annotated[list[str] | None, typer.Option(help="Caller number allowed (repeat).")] = None,
    auth_username: Annotated[str | None, typer.Option(help="Digest auth username the carrier uses.")] = None,
    auth_password: Annotated[str | None, typer.Option(help="Digest auth password the carrier uses.")] = None,
    carrier: Annotated[str | None, typer.Option(
        help=f"Preset for the carrier ({', '.join(carriers.CARRIERS)}): its signalling addresses as the allowed "
             "addresses, and the settings to enter on its side.")] = None,
    media_encryption: Annotated[str | None, typer.Option(
        help="SRTP: disable, allow (when the carrier offers it) or require (SIP_MEDIA_ENCRYPTION).")] = None,
    allow_open_trunk: Annotated[bool, typer.Option(
        "--allow-open-trunk", help="Accept a trunk with neither auth nor allowed addresses on a reachable SIP "
                                   "address (anyone could call it).")] = False,
    dry_run: Annotated[bool, typer.Option(help="Print the plan; change nothing.")] = False,
):
    """Create or reuse the inbound trunk and the dispatch rule that sends each caller, in a room of their own,
    to our agent. The flags given are saved to .env, so that the next `up` provisions the same."""
    settings = Settings.load()
    carrier = carrier or settings.sip_carrier or None
    preset = None
    if carrier is not None:
        preset = carriers.CARRIERS.get(carrier.strip().lower())
        if preset is None:
            raise StackError(f"unknown carrier {carrier!r}: choose from {', '.join(carriers.CARRIERS)}")
    allowed_address = allowed_address or list(preset.signalling if preset else ())
    media_encryption = (media_encryption or "").strip().lower()
    config = _sip_config(settings, numbers=number, allowed_addresses=allowed_address, allowed_numbers=allowed_number,
                         auth_username=auth_username, auth_password=auth_password,
                         media_encryption=media_encryption, allow_open_trunk=allow_open_trunk)
    flags = {
        "SIP_NUMBERS": ",".join(number or []), "SIP_ALLOWED_ADDRESSES": ",".join(allowed_address),
        "SIP_ALLOWED_NUMBERS": ",".join(allowed_number or []),
        "SIP_AUTH_USERNAME": auth_username or "", "SIP_AUTH_PASSWORD": auth_password or "",
        "SIP_MEDIA_ENCRYPTION": media_encryption, "SIP_ALLOW_OPEN_TRUNK": "true" if allow_open_trunk else "",
        "SIP_CARRIER": preset.name if preset else "",
    }
    _run_sip_setup(settings, config, dry_run)
    given = {key: value for key, value in flags.items() if value}
    if given and not dry_run:
        save_env_values(settings.env_file, **given)
        out.print(f"Saved to {settings.env_file}: {', '.join(given)}", highlight=False)
    if preset is not None:
        _print_carrier_settings(settings, preset, config)


@sip_app.command("list")
def sip_list():
    """Show inbound trunks and dispatch rules."""
    trunks, rules = _with_livekit(Settings.load(), provisioning.list_all)
    trunk_table = Table("trunk id", "name", "numbers", "allowed addresses", "allowed numbers", "auth", "SRTP",
                        "max call", "ours", title="Inbound trunks")
    encryption = {value: name for name, value in provisioning.MEDIA_ENCRYPTION.items()}
    for t in trunks:
        trunk_table.add_row(t.sip_trunk_id, t.name, ", ".join(t.numbers), ", ".join(t.allowed_addresses) or "any",
                            ", ".join(t.allowed_numbers) or "any", "yes" if t.auth_username else "no",
                            encryption.get(t.media_encryption, "?"),
                            f"{t.max_call_duration.seconds} s" if t.max_call_duration.seconds else "-",
                            "yes" if provisioning.is_managed(t) else "no")
    rule_table = Table("rule id", "name", "kind", "trunks", "agents", "ours", title="Dispatch rules")
    for r in rules:
        kind = r.rule.WhichOneof("rule") or "?"
        prefix = r.rule.dispatch_rule_individual.room_prefix if kind == "dispatch_rule_individual" else ""
        rule_table.add_row(r.sip_dispatch_rule_id, r.name, f"{kind} {prefix}".strip(), ", ".join(r.trunk_ids) or "all",
                           ", ".join(a.agent_name for a in r.room_config.agents) or "-",
                           "yes" if provisioning.is_managed(r) else "no")
    out.print(trunk_table)
    out.print(rule_table)


@sip_app.command("teardown")
def sip_teardown():
    """Delete the trunk and rule that `sip setup` created, and nothing else."""
    deleted = _with_livekit(Settings.load(), provisioning.teardown)
    out.print("Deleted: " + "; ".join(deleted) if deleted else "Nothing to delete.")


@sip_app.command("status")
def sip_status():
    """Is the SIP service up and healthy, is SIP enabled on the server, and is our trunk and rule in place?"""
    settings = Settings.load()
    problems = []
    if not settings.uses_remote_livekit:
        sip = next(s for s in lifecycle.status(settings, [LIVEKIT_SIP.name]))
        out.print(f"livekit-sip {sip.version}: {'healthy' if sip.up else 'DOWN'} at {sip.address} "
                  f"(pid {sip.pid or '-'})")
        if not sip.up:
            problems.append("livekit-sip is down: `python cli.py up`")
        if settings.sip_exposed:
            out.print(f"carriers send calls to {phone_line.sip_uri(settings)}; unknown callers get no answer: "
                      f"{'yes' if settings.sip_hides_inbound_port else 'no'}")
        else:
            out.print("SIP listens on loopback only: no carrier can reach it (docs/deploy.md)")

    trunks, rules = _with_livekit(settings, provisioning.list_all)
    ours_trunks = [t for t in trunks if provisioning.is_managed(t)]
    ours_rules = [r for r in rules if provisioning.is_managed(r)]
    out.print(f"SIP API on {settings.livekit_url}: enabled ({len(trunks)} trunks, {len(rules)} rules)")
    for t in ours_trunks:
        guard = ", ".join(filter(None, ["digest auth" if t.auth_username else "",
                                        f"from {', '.join(t.allowed_addresses)}" if t.allowed_addresses else ""]))
        out.print(f"our trunk {t.sip_trunk_id}: {', '.join(t.numbers)} ({guard or 'open to any caller'})")
    for r in ours_rules:
        out.print(f"our rule {r.sip_dispatch_rule_id}: agent {', '.join(a.agent_name for a in r.room_config.agents)}")
    if not ours_trunks or not ours_rules:
        problems.append("no trunk/rule from `sip setup` yet: run `python cli.py sip setup`")
    for problem in problems:
        err.print(f"[red]problem:[/] {escape(problem)}")
    if problems:
        raise typer.Exit(1)


@app.command()
def dial(
    number: Annotated[str | None, typer.Argument(help="The number to call, E.164 (+15550123).")] = None,
    purpose: Annotated[str, typer.Option(help="What the call is about, said to the person or left on their "
                                              "voicemail, like \"Your order is ready for pickup\".")] = "",
    csv_file: Annotated[Path | None, typer.Option("--csv", help="A batch instead: a CSV with the columns "
                                                                "number,purpose.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=20, help="Batch: calls at once.")] = 1,
    retries: Annotated[int, typer.Option(min=0, max=10, help="Batch: more tries for a call not answered, busy, "
                                                             "or with no free line.")] = 1,
    retry_delay: Annotated[float, typer.Option(min=0, help="Batch: seconds before such a try.")] = 300.0,
    wait: Annotated[float, typer.Option(min=10, help="Seconds to wait for each call to end.")] = 900.0,
):
    """Call a number: the agent dials it through the outbound trunk (`sip setup` with SIP_OUTBOUND_ADDRESS), talks
    to a person about the purpose, or leaves a message on their voicemail; prints how the call ended. Exits 0 when
    the call reached someone (or their voicemail), 3 when it did not."""
    from sip import dialing

    settings = Settings.load()
    progress = lambda line: err.print(line, highlight=False, markup=False)  # noqa: E731
    if csv_file is not None:
        if number:
            raise StackError("give a number or --csv, not both")
        outcomes = dialing.run_batch(settings, dialing.read_batch(csv_file), concurrency=concurrency,
                                     retries=retries, retry_delay_s=retry_delay, limit_s=wait, progress=progress)
    elif number:
        outcomes = [dialing.call_and_wait(settings, number, purpose, limit_s=wait, progress=progress)]
    else:
        raise StackError("give the number to call, or --csv FILE for a batch")
    for outcome in outcomes:
        tries = f", {outcome.attempts} tries" if outcome.attempts > 1 else ""
        call = f"  call {outcome.call_id[:8]}" if outcome.call_id else ""
        out.print(f"{outcome.number}: {outcome.describe()}{tries}{call}", highlight=False, markup=False)
    if not all(outcome.reached for outcome in outcomes):
        raise typer.Exit(3)


@app.command()
def token(
    room: Annotated[str | None, typer.Option(help="Room to join (default: a new random web-... room).")] = None,
    identity: Annotated[str, typer.Option(help="The participant identity.")] = "web-user",
    ttl: Annotated[int, typer.Option(help="Minutes the token stays valid.")] = 15,
    camera: Annotated[bool, typer.Option(help="Also allow publishing a camera (default: microphone only).")] = False,
):
    """Print the server URL and a join token for LiveKit's agents playground or any LiveKit client."""
    from datetime import timedelta

    from playground.tokens import join_token, new_room_name

    settings = Settings.load()
    if not settings.api_key or not settings.api_secret:
        raise StackError("no LIVEKIT_API_KEY / LIVEKIT_API_SECRET yet: run `python cli.py up` (it generates them) "
                         "or set them in .env")
    if ttl <= 0 or ttl > 24 * 60:
        raise StackError("--ttl is in minutes, between 1 and 1440")
    room = room or new_room_name()
    agent_name = settings.agent_name
    jwt = join_token(settings.api_key, settings.api_secret, room, identity, agent_name, timedelta(minutes=ttl),
                     camera=camera)
    out.print(f"LIVEKIT_URL={settings.livekit_url}", highlight=False)
    out.print(f"room={room}  identity={identity}  valid for {ttl} min  agent={agent_name}", highlight=False)
    print(jwt)


@kb_app.command("check")
def kb_check(
    file: Annotated[Path | None, typer.Argument(
        help="Business TOML file (default: BUSINESS_CONFIG from .env).")] = None,
):
    """Validate the [[faq]] entries: one line per problem, exit 1 if there is any."""
    from agent.knowledge import KnowledgeError, read_entries, vocabulary_of

    if file is None and not (file := Settings.load().business_config):
        err.print("[red]error:[/] no file: pass one, or set BUSINESS_CONFIG in .env", highlight=False)
        raise typer.Exit(1)
    try:
        entries = read_entries(file)
    except KnowledgeError as error:
        for problem in error.problems:
            err.print(escape(problem), highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    out.print(f"{escape(str(file))}: {len(entries)} entries OK", highlight=False)
    if vocabulary := vocabulary_of(entries):
        out.print(f"speech-to-text vocabulary: {escape(', '.join(vocabulary))}", highlight=False, soft_wrap=True)


# The test softphone (tools/softphone/command.py).
from tools.softphone.command import call as _call_command  # noqa: E402

app.command("call")(_call_command)


def main() -> None:
    try:
        app()
    except SettingsError as error:  # a bad value in .env or the environment
        err.print(f"[red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except StackError as error:
        err.print(f"[red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # huggingface_hub reads it: never fetch model weights at run time
    main()
