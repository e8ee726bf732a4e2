"""The `appliance` command."""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape


def _number(kind: type, low: float, strict: bool):  # noqa: ANN202 - an argparse type
    """An argparse type: ``kind(text)``, refused unless it is > ``low`` (``strict``) or >= ``low``."""

    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {'a whole number' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if not (value > low if strict else value >= low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, got {text}")
        return value

    return parse


_positive_float = _number(float, 0, strict=True)
_positive_int = _number(int, 1, strict=False)
_nonnegative_float = _number(float, 0, strict=False)
_nonnegative_int = _number(int, 0, strict=False)


def _env_default(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _from_env(name: str, convert: Any) -> Any:
    """``convert`` for an option whose default comes from $``name``: a bad value says it came from there
    (argparse converts a default only when the option is not given, so nothing fails while building)."""

    def from_env(text: str) -> Any:
        try:
            return convert(text)
        except argparse.ArgumentTypeError as e:
            if os.environ.get(name) == text:
                raise argparse.ArgumentTypeError(f"{e} (from ${name})") from None
            raise

    from_env.__name__ = getattr(convert, "__name__", "value")  # argparse names a failed type by it
    return from_env


def _cores(text: str) -> list[int]:
    """``0-3,6`` -> [0, 1, 2, 3, 6]."""
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            out += range(int(lo), int(hi or lo) + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must list cores like 0-3,6, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError(f"must name at least one core, got {text!r}")
    return out


def _delays(text: str) -> list[float]:
    """``1,10`` -> [1.0, 10.0] (milliseconds, each >= 0)."""
    try:
        out = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must list milliseconds like 1,10, got {text!r}") from None
    if not out or any(not d >= 0 for d in out):
        raise argparse.ArgumentTypeError(f"must list milliseconds >= 0, got {text!r}")
    return out


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535 (0 disables metrics), got {text}")
    return value


def _add_run_options(cmd: argparse.ArgumentParser) -> None:
    """The options `appliance train` and `appliance doctor` share, so the doctor checks the same run."""
    cmd.add_argument("--env", help="env to train (default: snake)")
    cmd.add_argument("--ranks", type=_positive_int, help="CPU learner ranks (default 1; CUDA: one per GPU)")
    cmd.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the config's (auto)")
    cmd.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a config value (repeatable)")
    cmd.add_argument(
        "--metrics-port", type=_from_env("APPLIANCE_METRICS_PORT", _port),
        default=_env_default("APPLIANCE_METRICS_PORT", "9100"),
        help="base Prometheus port, rank r serves on PORT+r; 0 disables (default $APPLIANCE_METRICS_PORT or 9100)",
    )
    cmd.add_argument(
        "--metrics-addr", default=_env_default("APPLIANCE_METRICS_ADDR", "127.0.0.1"),
        help="address /metrics listens on (default $APPLIANCE_METRICS_ADDR or 127.0.0.1)",
    )


def _add_busy_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--busy-cores", type=_nonnegative_int, default=0, metavar="N",
                        help="keep N cores busy with other processes while measuring (a shared machine); "
                             "the records say so (default 0)")


def _add_bench_options(cmd: argparse.ArgumentParser, what: str = "entry") -> None:
    """--seconds, --runs and --json, which every throughput bench takes."""
    cmd.add_argument("--seconds", type=_positive_float, default=1.0, help="seconds per run (default 1)")
    cmd.add_argument("--runs", type=_positive_int, default=5,
                     help=f"runs per {what}; the median is reported (default 5)")
    cmd.add_argument("--json", metavar="PATH", help="write the records as JSON to PATH")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance",
        description="Reinforcement-learning training appliance: C envs, actor pool, PPO, metrics.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    envs_cmd = commands.add_parser("envs", help="list the environments and their spaces")
    envs_cmd.set_defaults(func=cmd_envs)

    health = commands.add_parser(
        "health", help="exit 0 if this machine's rank 0 serves /metrics (the image's HEALTHCHECK)"
    )
    health.add_argument("--host", default="127.0.0.1", help="address to query (default 127.0.0.1)")
    health.add_argument(
        "--port", type=_from_env("APPLIANCE_METRICS_PORT", _port),
        default=_env_default("APPLIANCE_METRICS_PORT", "9100"),
        help="metrics port (default $APPLIANCE_METRICS_PORT or 9100)",
    )
    health.add_argument("--timeout", type=_positive_float, default=5.0, help="seconds to wait (default 5)")
    health.set_defaults(func=cmd_health)

    bench = commands.add_parser("bench", help="measure throughput (medians, JSON output)")
    targets = bench.add_subparsers(dest="target", metavar="TARGET", required=True)
    bench_envs = targets.add_parser("envs", help="raw native env step throughput on one pinned core")
    bench_envs.add_argument("--env", help="one env (default: every native env)")
    _add_bench_options(bench_envs, "env")
    bench_envs.set_defaults(func=cmd_bench_envs)
    bench_actors = targets.add_parser("actors", help="actor pool vs the raw C loop, EnvPool and Gymnasium")
    bench_actors.add_argument("--env", default="cartpole", help="env to step (default cartpole)")
    _add_bench_options(bench_actors)
    bench_actors.add_argument("--envs-per-actor", type=_positive_int, default=None, metavar="N",
                              help="envs per actor (default: enough that half of them take ~0.5 ms to step)")
    bench_actors.add_argument("--autotune", action="store_true",
                              help="measure candidate layouts for --env and save the fastest "
                                   "for `appliance train`")
    bench_actors.add_argument("--order", choices=("turn", "ready"), default=None,
                              help="with --autotune: the order the pool serves groups in, as "
                                   "`pool.order` in the train config (default turn)")
    _add_busy_option(bench_actors)
    bench_actors.set_defaults(func=cmd_bench_actors)
    bench_emu = targets.add_parser("emulation", help="emulated envs: pool vs Gymnasium/ALE vectors, pack cost")
    _add_bench_options(bench_emu)
    bench_emu.add_argument("--num-envs", type=_positive_int, default=0,
                           help="envs of the Dict-observation entries (default 4 per core); with --env, the "
                                "pool's envs (default: per actor, enough for a 2 ms batch at the plain loop's rate, "
                                "or half or a quarter of that where one process steps those clearly faster)")
    bench_emu.add_argument("--env", default=None,
                           help="one env (nethack/score, minihack/room-5x5, crafter, CartPole-v1...): plain loop, "
                                "pool, AsyncVectorEnv and PufferLib side by side")
    _add_busy_option(bench_emu)
    bench_emu.set_defaults(func=cmd_bench_emulation)
    bench_api = targets.add_parser(
        "api", help="from your own code: SB3 PPO through the pool vs SubprocVecEnv; pool startup vs before"
    )
    bench_api.add_argument("--runs", type=_positive_int, default=3, help="runs per entry; medians (default 3)")
    bench_api.add_argument("--json", metavar="PATH", help="write the records as JSON to PATH")
    bench_api.set_defaults(func=cmd_bench_api)
    bench_train = targets.add_parser(
        "train", help="training: where the time goes (pool, rollout, update), learning per wall-second, "
                      "and on cartpole the race to mean return 475 vs SB3 PPO"
    )
    bench_train.add_argument("--env", default="cartpole",
                             help="env to train: a shipped config or any env one is derived for (default cartpole)")
    bench_train.add_argument("--runs", type=_nonnegative_int, default=3,
                             help="cartpole: seeded runs of the race to 475; the median is reported (default 3; "
                                  "0 skips the race)")
    bench_train.add_argument("--split-seconds", type=_nonnegative_float, default=15.0, metavar="S",
                             help="seconds each of pool alone, rollout without updates and full training run "
                                  "(default 15; 0 skips them)")
    bench_train.add_argument("--candidate", action="append", default=[], metavar="NAME:KEY=V,KEY=V",
                             help="train this set of overrides for --candidate-seconds and compare its return "
                                  "with the others' and a random policy's (repeatable; 'NAME:' is the config)")
    bench_train.add_argument("--candidate-seconds", type=_positive_float, default=60.0, metavar="S",
                             help="wall time each candidate trains (default 60)")
    bench_train.add_argument("--seconds-limit", type=_positive_float, default=300.0,
                             help="wall-clock cap per training run, ours and SB3's (default 300)")
    bench_train.add_argument("--no-sb3", action="store_true", help="skip the Stable-Baselines3 peer")
    bench_train.add_argument("--no-metrics", action="store_true",
                             help="skip the metrics on/off comparison (on: the real exporter, scraped every 1 s)")
    bench_train.add_argument("--set", dest="overrides", action="append", default=[],
                             metavar="SECTION.KEY=VALUE", help="override our trainer's config (repeatable)")
    _add_busy_option(bench_train)
    bench_train.add_argument("--json", metavar="PATH", help="write the records as JSON to PATH")
    bench_train.set_defaults(func=cmd_bench_train)
    bench_remote = targets.add_parser(
        "remote", help="remote actor hosts (network namespaces, added latency) vs the local pool, same run")
    bench_remote.add_argument("--env", default="snake", help="env to step (default snake)")
    _add_bench_options(bench_remote)
    bench_remote.add_argument("--delays", type=_delays, default=[1.0, 10.0], metavar="MS,MS",
                              help="latency added each way, one remote pool per value (default 1,10)")
    bench_remote.add_argument("--num-envs", type=_positive_int, default=1024, help="envs per pool (default 1024)")
    bench_remote.add_argument("--batches", type=_positive_int, default=4,
                              help="batches in flight per host (default 4; 2 hosts)")
    bench_remote.set_defaults(func=cmd_bench_remote)
    report = targets.add_parser("report", help="render bench JSON files as a markdown table")
    report.add_argument("json", nargs="+", metavar="JSON", help="files written by `appliance bench ... --json`")
    report.add_argument("--update", metavar="README", help="rewrite the table between the README's bench markers")
    report.set_defaults(func=cmd_bench_report)

    dashboard = commands.add_parser("dashboard", help="the Grafana dashboard: export its JSON or push it")
    actions = dashboard.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write the dashboard JSON to PATH (stdout without PATH)")
    export.add_argument("path", nargs="?", metavar="PATH", help="file to write (default: stdout)")
    export.set_defaults(func=cmd_dashboard_export)
    push = actions.add_parser("push", help="upload the dashboard to Grafana, replacing an older version")
    push.add_argument("--url", required=True, help="Grafana base URL, e.g. http://localhost:3000")
    push.add_argument("--token", help="Grafana service-account or API token")
    push.add_argument("--user", help="Grafana user (with --password)")
    push.add_argument("--password", help="Grafana password (with --user)")
    push.add_argument("--folder-uid", help="Grafana folder to put it in (default: General)")
    push.add_argument("--timeout", type=_positive_float, default=10.0, help="seconds to wait (default 10)")
    push.set_defaults(func=cmd_dashboard_push)

    train = commands.add_parser("train", help="train PPO on an env (all GPUs, else the CPU)")
    _add_run_options(train)
    train.add_argument("--total-steps", type=_from_env("APPLIANCE_TOTAL_STEPS", _positive_int),
                       default=os.environ.get("APPLIANCE_TOTAL_STEPS") or None,
                       help="agent steps to train for (default $APPLIANCE_TOTAL_STEPS, else the config's)")
    train.add_argument("--target-return", type=float, help="stop at this mean return (last 100)")
    train.add_argument("--seed", type=int, help="base seed (each rank's envs get their own)")
    train.add_argument("--run-dir", help="where checkpoints, config.toml and summary.json go")
    train.add_argument("--resume", action="store_true", help="continue --run-dir from its checkpoint")
    train.add_argument("--resume-if-present", action="store_true",
                       help="continue --run-dir if it holds a checkpoint, else start fresh (for restarts)")
    remote = train.add_argument_group("remote actor hosts (`appliance actors serve`), the config's [remote]")
    remote.add_argument("--remote-actors", metavar="tcp://*:PORT",
                        help="listen for actor hosts here (rank r on PORT+r) instead of running local actors")
    remote.add_argument("--remote-hosts", type=_positive_int, metavar="N", help="actor hosts to wait for")
    remote.add_argument("--remote-keys", metavar="DIR", help="keys from `appliance keys new DIR` (CurveZMQ)")
    remote.add_argument("--insecure", action="store_true", default=None,
                        help="plain TCP without CurveZMQ: anyone who reaches the port can feed the learner")
    train.set_defaults(func=cmd_train)

    config = commands.add_parser(
        "config", help="the config `appliance train` would run, as TOML; or the reference of every key (--markdown)"
    )
    config.add_argument("--env", help="env whose config to show (default: snake)")
    config.add_argument("--device", choices=("auto", "cpu", "cuda"),
                        help="the config for this device, on this machine or not (default: the config's, auto)")
    config.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (repeatable)")
    config.add_argument("--markdown", action="store_true",
                        help="print every key with its type, default and meaning as a markdown table")
    config.add_argument("--update", metavar="README",
                        help="with --markdown: rewrite the table between the README's config markers")
    config.set_defaults(func=cmd_config)
    actors_cmd = commands.add_parser("actors", help="actor hosts: serve a remote learner's envs")
    actor_actions = actors_cmd.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = actor_actions.add_parser(
        "serve", help="run actors on this host's cores for a learner started with --remote-actors")
    serve.add_argument("--connect", required=True, metavar="tcp://LEARNER:PORT", help="the learner rank's address")
    serve.add_argument("--env", help="refuse a learner that trains another env (default: serve what it asks)")
    serve.add_argument("--cores", type=_cores, help="cores for the actors, e.g. 0-3,6 (default: every allowed core)")
    serve.add_argument("--actors", type=_positive_int, help="actor processes in all (default one per core)")
    serve.add_argument("--keys", metavar="DIR", default=os.environ.get("APPLIANCE_REMOTE_KEYS"),
                       help="key directory holding server.key and this host's secret key "
                            "(default $APPLIANCE_REMOTE_KEYS)")
    serve.add_argument("--client", metavar="NAME", help="this host's key pair in DIR/clients (default: the only one)")
    serve.add_argument("--name", help="the host label in the learner's metrics (default: the hostname)")
    serve.add_argument("--insecure", action="store_true", help="plain TCP without CurveZMQ (prints a warning)")
    serve.set_defaults(func=cmd_actors_serve)

    keys_cmd = commands.add_parser("keys", help="CurveZMQ keys for remote actor hosts")
    key_actions = keys_cmd.add_subparsers(dest="action", metavar="ACTION", required=True)
    keys_new = key_actions.add_parser("new", help="write a server key pair and client key pairs (mode 0600)")
    keys_new.add_argument("dir", metavar="DIR", help="an empty or new directory")
    keys_new.add_argument("--clients", type=_positive_int, default=2, help="client key pairs (default 2)")
    keys_new.set_defaults(func=cmd_keys_new)

    doctor = commands.add_parser(
        "doctor", help="preflight checks for the run `appliance train` with the same options would do"
    )
    _add_run_options(doctor)
    doctor.set_defaults(func=cmd_doctor)

    sweep_cmd = commands.add_parser(
        "sweep", help="many trainings of one env on Optuna (resumable; workers on several machines share a storage)",
        description="Runs --trials trainings of --env with values from --space; `appliance sweep report NAME` "
                    "shows the results.",
    )
    sweep_cmd.add_argument("--env", help="env to train (required to run a sweep)")
    sweep_cmd.add_argument("--space", metavar="SPACE.toml",
                           help="config keys with a distribution each: uniform, log_uniform, int, categorical")
    sweep_cmd.add_argument("--trials", type=_positive_int, default=16, help="finished trials to reach (default 16)")
    sweep_cmd.add_argument("--steps", type=_positive_int, help="agent steps per trial (default: the config's)")
    sweep_cmd.add_argument("--workers", type=_positive_int, default=1,
                           help="trials at once on this machine, each on its own cores (default 1)")
    sweep_cmd.add_argument("--storage", metavar="URL",
                           help="Optuna RDB storage (default: SQLite in runs/sweep-NAME/; postgresql://... to "
                                "share the sweep across machines)")
    sweep_cmd.add_argument("--objective", choices=("return", "return-per-second"), default="return",
                           help="return: the mean return; return-per-second: return up and wall time down "
                                "(two objectives, a Pareto front; no pruning)")
    sweep_cmd.add_argument("--pruner", choices=("median", "hyperband", "none"),
                           help="stops hopeless trials from their mean return per update (default median; "
                                "none with return-per-second)")
    sweep_cmd.add_argument("--name", help="sweep name (default ENV-SPACESTEM); the same name continues a sweep")
    sweep_cmd.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                           help="fix a config value for every trial (repeatable)")
    sweep_cmd.add_argument(
        "--metrics-port", type=_from_env("APPLIANCE_SWEEP_METRICS_PORT", _port),
        default=_env_default("APPLIANCE_SWEEP_METRICS_PORT", "0"),
        help="serve the sweep's progress for Prometheus on this port (default $APPLIANCE_SWEEP_METRICS_PORT or 0, off)",
    )
    sweep_cmd.add_argument("--metrics-addr", default="127.0.0.1", help="address /metrics listens on")
    sweep_cmd.set_defaults(func=cmd_sweep)
    sweep_actions = sweep_cmd.add_subparsers(dest="sweep_action", metavar="ACTION")
    sweep_report = sweep_actions.add_parser("report", help="best trials as a table, a CSV and a PNG plot")
    sweep_report.add_argument("sweep_name", metavar="NAME")
    sweep_report.add_argument("--storage", dest="report_storage", metavar="URL",
                              help="the sweep's storage (default: SQLite in runs/sweep-NAME/)")
    sweep_report.add_argument("--top", type=_positive_int, default=10, help="trials in the table (default 10)")
    sweep_report.add_argument("--out", metavar="DIR",
                              help="where report.csv and report.png go (default: the sweep's dir)")
    sweep_report.set_defaults(func=cmd_sweep_report)

    evaluate = commands.add_parser("eval", help="mean return of a run's greedy policy")
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--episodes", type=_positive_int, default=100,
                          help="episodes, or games with --opponent (default 100); at least this many, counted as"
                               " they end (a moba game ends 5 heroes' episodes at once)")
    evaluate.add_argument("--opponent", choices=("self", "scripted", "random"),
                          help="team games (moba): play against this opponent and report the win rate")
    evaluate.set_defaults(func=cmd_eval)

    render = commands.add_parser("render", help="draw a greedy game of a run as PNG frames or a GIF (moba)")
    render.add_argument("env", choices=("moba",), metavar="ENV", help="the env to draw (moba)")
    render.add_argument("run_dir", metavar="RUN_DIR", nargs="?",
                        help="run whose latest checkpoint plays team 0 (default: the scripted bot plays it)")
    render.add_argument("--out", default="moba.gif",
                        help="a .gif file, or a directory for one PNG per frame (default moba.gif)")
    render.add_argument("--opponent", choices=("self", "scripted", "random"), default="scripted",
                        help="who plays team 1 (default scripted)")
    render.add_argument("--steps", type=_positive_int, default=600, help="ticks to draw at most (default 600)")
    render.add_argument("--every", type=_positive_int, default=2, help="draw every Nth tick (default 2)")
    render.add_argument("--scale", type=_positive_int, default=8, help="pixels per cell (default 8)")
    render.add_argument("--seed", type=int, default=0, help="the game's seed (default 0)")
    render.add_argument("--ascii", action="store_true", help="also print the last frame as text")
    render.set_defaults(func=cmd_render)
    return parser


def cmd_envs(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    import envs

    out = Table(title="environments")
    for column in ("name", "observation space", "action space", "agents per env"):
        out.add_column(column)
    for name in envs.names():
        missing = envs.missing_extra(name)
        if missing is not None:  # listed all the same, with the one line that installs it
            out.add_row(name, escape(f"not installed: {missing.split(': ', 1)[1]}"), "-", "-")
            continue
        try:
            env = envs.make(name, num_envs=1)
        except Exception as exc:  # noqa: BLE001 - one broken env is a row that says so, not a crash
            out.add_row(name, escape(f"cannot be made: {type(exc).__name__}: {exc}"), "-", "-")
            continue
        spaces = (str(env.single_observation_space), str(env.single_action_space))
        out.add_row(name, *spaces, str(env.num_agents))
        env.close()
    console.print(out)
    return 0


def cmd_health(args: argparse.Namespace, console: Console) -> int:
    from .health import check

    console.print(check(args.host, args.port, args.timeout), highlight=False)
    return 0


def cmd_bench_envs(args: argparse.Namespace, console: Console) -> int:
    import envs

    from .bench import envs as bench_envs

    if args.env is not None and args.env not in envs.names():
        raise ValueError(f"unknown env '{args.env}' (known: {', '.join(envs.names())})")
    bench_envs.run(args.env, args.seconds, args.runs, args.json, console)
    return 0


def cmd_bench_train(args: argparse.Namespace, console: Console) -> int:
    from .bench import train_split
    from .bench.common import busy_cores, write_json

    named = [train_split.parse_candidate(c) for c in args.candidate]  # bad input fails before any run
    try:  # an unknown env or a bad --set fails before any run too
        train_split.resolved(args.env, args.overrides)
    except ValueError as exc:
        raise ValueError(f"--env {args.env} / --set: {exc}") from None
    with busy_cores(args.busy_cores, console):
        write_json(args.json, _bench_train(args, named, console))
    return 0


def _bench_train(args: argparse.Namespace, named: list[Any], console: Console) -> list[dict[str, Any]]:
    from .bench import train as bench_train
    from .bench import train_split

    records: list[dict[str, Any]] = []
    if args.split_seconds > 0:
        records += train_split.split(args.env, args.overrides, args.split_seconds, console)
    if args.runs and args.env == "cartpole":
        records += bench_train.run(args.env, args.runs, args.seconds_limit, None, console,
                                   with_sb3=not args.no_sb3, with_metrics=not args.no_metrics,
                                   overrides=args.overrides)
    elif args.runs:
        console.print(f"race to mean return {bench_train.TARGET:g} skipped: it is CartPole's target, not {args.env}'s")
    if named:
        records += train_split.candidates(args.env, named, args.overrides, args.candidate_seconds, console)
    return records


def cmd_bench_report(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from .bench import report

    table = report.markdown(report.load(args.json))
    if args.update:
        path = Path(args.update)
        path.write_text(report.update(path.read_text(), table))
        console.print(f"updated the benchmark table in {path}")
    else:
        sys.stdout.write(table)
    return 0


def cmd_dashboard_export(args: argparse.Namespace, console: Console) -> int:
    from monitoring import dashboard

    text = dashboard.export(args.path)
    if args.path is None:
        sys.stdout.write(text)
    else:
        console.print(f"wrote {args.path}")
    return 0


def cmd_dashboard_push(args: argparse.Namespace, console: Console) -> int:
    from monitoring import dashboard

    answer = dashboard.push(
        args.url,
        token=args.token,
        user=args.user,
        password=args.password,
        folder_uid=args.folder_uid,
        timeout=args.timeout,
    )
    console.print(f"pushed dashboard to {args.url}{answer.get('url', '')}")
    return 0


# `appliance train`'s exit codes besides 0 (finished, or --target-return reached) and 2 (bad input).
EXIT_TARGET_MISSED = 3
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}  # 128 + the signal's number, as a shell reports it


def cmd_train(args: argparse.Namespace, console: Console) -> int:
    import json

    from learner.train import resolve_device

    from . import train

    extra = {"train.device": args.device, "train.total_steps": args.total_steps,
             "train.target_return": args.target_return, "train.seed": args.seed,
             "remote.bind": args.remote_actors, "remote.hosts": args.remote_hosts,
             "remote.keys": args.remote_keys, "remote.insecure": args.insecure}
    resume = train.should_resume(args.run_dir, args.resume, args.resume_if_present)
    config, run_dir = train.resolve(args.env, args.overrides, args.run_dir, resume, extra,
                                    restart=args.resume_if_present)
    if resume and (done := train.finished(run_dir, config)) is not None:
        console.print(done, highlight=False, soft_wrap=True)
        return 0
    world = train.preflight(config, args.ranks, args.metrics_port, args.metrics_addr)
    tcfg = config["train"]
    device = resolve_device(tcfg["device"]).type
    ranks = int(os.environ.get("WORLD_SIZE", world))
    target = f", until mean return {tcfg['target_return']:g}" if tcfg["target_return"] else ""
    where = f"; metrics on {args.metrics_addr}:{args.metrics_port}+rank" if args.metrics_port else ""
    verb = "resuming" if resume else "training"
    console.print(f"{verb} {config['env']['name']} on {device}, {ranks} rank{'s' if ranks > 1 else ''}, "
                  f"{int(tcfg['total_steps']):,} agent steps{target}, in {run_dir}{where} (Ctrl-C stops with "
                  "a checkpoint)", highlight=False, soft_wrap=True)
    summary = train.launch(config, run_dir, resume, args.ranks, args.metrics_port, args.metrics_addr, world)
    if summary is None:
        return 0
    if int(os.environ.get("RANK", 0)) == 0:  # under torchrun every rank returns one; rank 0's is the run's
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        sys.stdout.flush()
    if summary.get("outcome") == "stopped":
        return EXIT_SIGNAL.get(summary.get("stop_signal") or "", 130)
    if summary.get("outcome") == "target_missed":
        Console(stderr=True, soft_wrap=True).print(
            f"appliance train: the mean return {summary['mean_return'] or float('nan'):.1f} did not reach "
            f"--target-return {summary['target_return']:g} in {summary['agent_steps']:,} agent steps (exit "
            f"{EXIT_TARGET_MISSED}); continue with --run-dir {run_dir} --resume --total-steps N", highlight=False)
        return EXIT_TARGET_MISSED
    return 0


def cmd_bench_remote(args: argparse.Namespace, console: Console) -> int:
    from .bench import remote as bench_remote

    bench_remote.run(args.env, args.seconds, args.runs, args.delays, args.json, console, num_envs=args.num_envs,
                     batches=args.batches)
    return 0


def cmd_actors_serve(args: argparse.Namespace, console: Console) -> int:
    import logging

    from actors.host import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    console.print(f"serving actors for {args.connect} (Ctrl-C stops)", highlight=False, soft_wrap=True)
    serve(args.connect, env=args.env, cores=args.cores, actors=args.actors, keys=args.keys, client=args.client,
          insecure=args.insecure, name=args.name)
    return 0


def cmd_keys_new(args: argparse.Namespace, console: Console) -> int:
    from actors.remote_wire import keys_new

    made = keys_new(args.dir, args.clients)
    console.print(f"wrote {made['server']} (+ .key_secret, the learner's) and {len(made['clients'])} client "
                  f"key pairs in {args.dir}/clients (mode 0600): give each actor host server.key and one "
                  "client-N.key_secret; the learner accepts the clients/*.key it finds", highlight=False,
                  soft_wrap=True)
    return 0


STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def cmd_config(args: argparse.Namespace, console: Console) -> int:
    from learner import schema

    if args.markdown:
        if args.env or args.overrides or args.device:
            raise ValueError("--markdown documents every key of every env: it takes no --env, --set or --device")
        if args.update:
            from pathlib import Path

            path = Path(args.update)
            path.write_text(schema.with_reference(path.read_text()))
            console.print(f"updated the configuration reference in {path}")
        else:
            sys.stdout.write(schema.reference())
        return 0
    if args.update:
        raise ValueError("--update rewrites the README's reference: pass it with --markdown")
    import tomli_w

    from . import train

    config, _ = train.resolve(args.env, args.overrides, None, False, {"train.device": args.device}, preview=True)
    sys.stdout.write(tomli_w.dumps(config))
    return 0


def cmd_doctor(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    from . import doctor, train

    config, _ = train.resolve(args.env, args.overrides, None, False, {"train.device": args.device}, preview=True)
    world = train.local_ranks(config, args.ranks)
    checks = train.checks(config, world, args.metrics_port, args.metrics_addr)
    out = Table(title=f"appliance doctor: {config['env']['name']}, {world} rank(s) on this machine")
    for column in ("check", "status", "detail"):
        out.add_column(column)
    for check in checks:
        style = STATUS_STYLE.get(check.status, "")
        out.add_row(check.name, f"[{style}]{check.status}[/]", check.detail)
    console.print(out, highlight=False)
    return 1 if doctor.blocking(checks) else 0


def cmd_eval(args: argparse.Namespace, console: Console) -> int:
    from learner.evaluate import evaluate

    result = evaluate(args.run_dir, args.episodes, opponent=args.opponent)
    if args.opponent is not None:
        console.print(f"win rate {result['win_rate']:.3f} vs {args.opponent} over {result['games']} games, "
                      f"mean return {result['mean_return']:.2f} (checkpoint {result['checkpoint']}, "
                      f"update {result['updates']})", highlight=False)
        return 0
    console.print(f"mean return {result['mean_return']:.2f} over {result['episodes']} episodes "
                  f"(checkpoint {result['checkpoint']}, update {result['updates']})", highlight=False)
    return 0


def cmd_sweep(args: argparse.Namespace, console: Console) -> int:
    from . import sweep

    if not args.env or not args.space:
        raise ValueError("appliance sweep needs --env and --space (or: appliance sweep report NAME)")
    spec = sweep.prepare(args.env, args.space, args.trials, args.steps, args.workers, args.storage,
                         args.objective, args.pruner, args.name, args.overrides)
    console.print(f"sweep {spec.name}: {spec.trials} trials of {spec.env}, {spec.steps:,} agent steps each, "
                  f"{spec.workers} at once, objective {spec.objective}, pruner {spec.pruner}; storage "
                  f"{sweep.redact(spec.storage)}; trials in {spec.directory}/ (Ctrl-C stops; the same command "
                  "continues)", highlight=False, soft_wrap=True)
    result = sweep.run(spec, console, args.metrics_port, args.metrics_addr)
    seen, top = result["counts"], result["best"]
    best = f"; best trial {top[0]}: mean return {top[1]:.1f}" if top else ""
    console.print(f"sweep {spec.name}: {seen['complete']} complete, {seen['pruned']} pruned, {seen['fail']} failed "
                  f"(re-queued ones run again), {seen['running']} running elsewhere{best}. See: appliance sweep "
                  f"report {spec.name}" + (f" --storage {sweep.redact(spec.storage)}" if args.storage else ""),
                  highlight=False, soft_wrap=True)
    if result["stopped"]:
        return EXIT_SIGNAL.get(result["stopped"], 130)
    if result["failing"]:
        Console(stderr=True, soft_wrap=True).print(f"appliance sweep: stopped, {result['failing']}; see the "
                                                   f"train.log of the failed trials in {spec.directory}")
        return EXIT_TARGET_MISSED
    return 0


def cmd_sweep_report(args: argparse.Namespace, console: Console) -> int:
    from . import sweep_report

    sweep_report.report(args.sweep_name, args.report_storage, args.top, args.out, console)
    return 0


def cmd_bench_api(args: argparse.Namespace, console: Console) -> int:
    from .bench import api as bench_api

    bench_api.run(args.runs, args.json, console)
    return 0


def cmd_render(args: argparse.Namespace, console: Console) -> int:
    from . import render

    frames = render.render(args.run_dir, args.out, opponent=args.opponent, steps=args.steps, every=args.every,
                           scale=args.scale, seed=args.seed)
    console.print(f"wrote {len(frames)} frames to {args.out}", highlight=False)
    if args.ascii:
        sys.stdout.write(frames[-1].text + "\n")
    return 0


def cmd_bench_emulation(args: argparse.Namespace, console: Console) -> int:
    from .bench.common import busy_cores

    if args.env is not None:
        from envs.registry import check_extra

        from .bench import emulation_env

        check_extra(args.env)
        with busy_cores(args.busy_cores, console):
            emulation_env.run(args.env, args.seconds, args.runs, args.json, console, num_envs=args.num_envs)
        return 0
    from .bench import emulation as bench_emulation

    with busy_cores(args.busy_cores, console):
        bench_emulation.run(args.seconds, args.runs, args.json, console, num_envs=args.num_envs)
    return 0


def cmd_bench_actors(args: argparse.Namespace, console: Console) -> int:
    import envs

    from .bench import actors as bench_actors

    if args.env not in envs.names():
        raise ValueError(f"unknown env '{args.env}' (known: {', '.join(envs.names())})")
    if args.order is not None and not args.autotune:
        raise ValueError("--order chooses what --autotune measures; the plain bench measures both orders")
    if args.autotune and args.busy_cores:
        raise ValueError("--autotune saves the layout `appliance train` uses: tune on a quiet machine, "
                         "without --busy-cores")
    if args.autotune:
        bench_actors.tune(args.env, args.seconds, args.runs, args.json, console, order=args.order or "turn")
    else:
        from .bench.common import busy_cores

        with busy_cores(args.busy_cores, console):
            bench_actors.run(args.env, args.seconds, args.runs, args.json, console, per_actor=args.envs_per_actor)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Piped into a file or a CI log there is no terminal width: rich would assume 80 columns
    # and fold every table cell; 160 keeps a benchmark table one line per row ($COLUMNS wins).
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    console = Console(width=160 if piped else None)
    try:
        return args.func(args, console)
    except (ValueError, OSError) as exc:
        # One line however narrow the terminal: soft_wrap leaves wrapping to it, and only the
        # first line of a multi-line message (a library's detail) is shown.
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        err = Console(stderr=True, soft_wrap=True)
        err.print(f"[bold red]appliance {args.command}:[/] {escape(message)}", highlight=False)
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        return 130


def run() -> int:
    """The `appliance` program (its console script, ``python -m appliance``, torchrun's ``-m appliance``).

    :func:`main`, and then a process that was one rank of a multi-rank run (under torchrun) ends
    through ``learner.train.exit_process``, not the interpreter's teardown: see there why. A fatal
    signal (a crash in native code) prints the Python stack that led to it.
    """
    faulthandler.enable()
    code = main()
    trained = sys.modules.get("learner.train")
    if trained is not None and trained.made_process_group():
        trained.exit_process(code)
    return code


if __name__ == "__main__":
    sys.exit(run())
