"""The `appliance` command."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance",
        description="Reinforcement-learning training appliance: C envs, actor pool, PPO, metrics.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    envs_cmd = commands.add_parser("envs", help="list the environments and their spaces")
    envs_cmd.set_defaults(func=cmd_envs)

    bench = commands.add_parser("bench", help="measure throughput (medians, JSON output)")
    targets = bench.add_subparsers(dest="target", metavar="TARGET", required=True)
    bench_envs = targets.add_parser("envs", help="raw native env step throughput on one pinned core")
    bench_envs.add_argument("--env", help="one env (default: every native env)")
    bench_envs.add_argument("--seconds", type=_positive_float, default=1.0,
                            help="seconds per run (default 1)")
    bench_envs.add_argument("--runs", type=_positive_int, default=5,
                            help="runs per env; the median is reported (default 5)")
    bench_envs.add_argument("--json", metavar="PATH", help="write the records as JSON to PATH")
    bench_envs.set_defaults(func=cmd_bench_envs)
    bench_actors = targets.add_parser("actors", help="actor pool vs the raw C loop, EnvPool and Gymnasium")
    bench_actors.add_argument("--env", default="cartpole", help="env to step (default cartpole)")
    bench_actors.add_argument("--seconds", type=_positive_float, default=1.0,
                              help="seconds per run (default 1)")
    bench_actors.add_argument("--runs", type=_positive_int, default=5,
                              help="runs per entry; the median is reported (default 5)")
    bench_actors.add_argument("--json", metavar="PATH", help="write the records as JSON to PATH")
    bench_actors.add_argument("--autotune", action="store_true",
                              help="measure candidate layouts for --env and save the fastest "
                                   "for `appliance train`")
    bench_actors.set_defaults(func=cmd_bench_actors)
    return parser


def cmd_envs(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    import envs

    out = Table(title="environments")
    for column in ("name", "observation space", "action space", "agents per env"):
        out.add_column(column)
    for name in envs.names():
        env = envs.make(name, num_envs=1)
        spaces = (str(env.single_observation_space), str(env.single_action_space))
        out.add_row(name, *spaces, str(env.num_agents))
        env.close()
    console.print(out)
    return 0


def cmd_bench_envs(args: argparse.Namespace, console: Console) -> int:
    import envs

    from .bench import envs as bench_envs

    if args.env is not None and args.env not in envs.names():
        raise ValueError(f"unknown env '{args.env}' (known: {', '.join(envs.names())})")
    bench_envs.run(args.env, args.seconds, args.runs, args.json, console)
    return 0


def cmd_bench_actors(args: argparse.Namespace, console: Console) -> int:
    import envs

    from .bench import actors as bench_actors

    if args.env not in envs.names():
        raise ValueError(f"unknown env '{args.env}' (known: {', '.join(envs.names())})")
    if args.autotune:
        bench_actors.tune(args.env, args.seconds, args.runs, args.json, console)
    else:
        bench_actors.run(args.env, args.seconds, args.runs, args.json, console)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        return args.func(args, console)
    except (ValueError, OSError) as exc:
        Console(stderr=True).print(f"[bold red]appliance {args.command}:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
