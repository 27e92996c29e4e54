"""The ``llm-middleware`` command (also ``python -m llm_middleware``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from . import __version__
from .errors import LLMMiddlewareError
from .policy import IntentRules

if TYPE_CHECKING:
    from .logstats import LogSummary

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"llm-middleware: error: {message}\n")


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(latency=args.latency, json_trace=args.json)
    return 0


def _cmd_classify(args: argparse.Namespace) -> int:
    rules = IntentRules.from_file(args.rules) if args.rules else IntentRules.default()
    if (args.prompt is None) == (args.eval is None):
        raise LLMMiddlewareError("classify takes a PROMPT or --eval FILE (one of them)")
    if args.model:
        from .intent_model import default_model

        rules = rules.with_model(default_model())
    if args.eval is not None:
        from .intent_eval import evaluate, read_labelled

        result = evaluate(rules, read_labelled(args.eval))
        print(json.dumps(result.as_dict(), indent=2) if args.json else result.render(args.errors))
        return 0
    verdict = rules.classify(args.prompt)
    if args.json:
        print(
            json.dumps({"policy": verdict.policy.value, "ttl": verdict.ttl, "rule": verdict.rule})
        )
    else:
        print(f"policy: {verdict.policy.name}  ttl: {verdict.ttl}s  rule: {verdict.rule}")
    return 0


def _progress_printer(total: int, stream: IO[str]) -> object:
    def show(done: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done / total:6.1%}")
        stream.flush()

    return show


def _cmd_stats(args: argparse.Namespace) -> int:
    from .logstats import summarize

    if args.every is not None:
        return _watch_stats(args)
    html = args.html is not None
    if args.logfile == "-":
        summary = summarize(sys.stdin.buffer, timeline=html)
    else:
        try:
            handle = open(args.logfile, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise LLMMiddlewareError(f"cannot read {args.logfile}: {exc.strerror}") from exc
        with handle:
            progress = None
            if sys.stderr.isatty():
                progress = _progress_printer(os.fstat(handle.fileno()).st_size, sys.stderr)
            summary = summarize(handle, progress, timeline=html)  # type: ignore[arg-type]
            if progress is not None:
                sys.stderr.write("\n")
    print(json.dumps(summary.as_dict(), indent=2) if args.json else summary.render())
    if html:
        _write_report(summary, args)
    return 0


def _write_report(summary: LogSummary, args: argparse.Namespace) -> None:
    from .report import render_html

    source = "standard input" if args.logfile == "-" else os.path.basename(args.logfile)
    try:
        with open(args.html, "w", encoding="utf-8") as page:
            page.write(render_html(summary, source))
    except OSError as exc:
        raise LLMMiddlewareError(f"cannot write {args.html}: {exc.strerror}") from exc
    print(f"report written to {args.html}", file=sys.stderr)


def _watch_stats(args: argparse.Namespace) -> int:
    """``--every``: a summary refreshed while the input grows, a last one at its end."""
    import time

    from .live import follow

    if args.every <= 0:
        raise LLMMiddlewareError(f"--every must be positive, not {args.every}")
    if args.logfile == "-":
        handle = sys.stdin.buffer
    else:
        try:
            handle = open(args.logfile, "rb")  # noqa: SIM115 - closed at exit
        except OSError as exc:
            raise LLMMiddlewareError(f"cannot read {args.logfile}: {exc.strerror}") from exc
    clear = sys.stdout.isatty() and not args.json

    def show(summary: LogSummary, final: bool) -> None:
        text = json.dumps(summary.as_dict()) if args.json else summary.render()
        if clear:
            sys.stdout.write("\x1b[H\x1b[2J")
        elif not args.json:
            stamp = time.strftime("%H:%M:%S")
            sys.stdout.write(f"-- {'final at' if final else 'at'} {stamp} --\n")
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    lines = iter(handle.readline, b"")
    summary = follow(lines, args.every, show, timeline=args.html is not None)
    if args.html is not None:
        _write_report(summary, args)
    return 0


def _cmd_backends(args: argparse.Namespace) -> int:
    from .backend_listing import backend_rows, render_table

    for line in render_table(backend_rows()):
        print(line)
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from .encryption import generate_key

    print(generate_key())
    return 0


def _cmd_clear(args: argparse.Namespace) -> int:
    from .config import TIERS_ENV, cache_from_urls

    urls = args.tiers or os.environ.get(TIERS_ENV)
    if not urls:
        raise LLMMiddlewareError(f"name the tiers: --tiers URLS or {TIERS_ENV}")
    cache = cache_from_urls(urls)
    try:
        cache.clear(namespace=args.namespace)
    except Exception as exc:  # the shared tier is unreachable: nothing was cleared
        raise LLMMiddlewareError(f"could not clear: {type(exc).__name__}: {exc}") from exc
    finally:
        cache.close()
    what = "the whole cache" if args.namespace is None else f"namespace {args.namespace!r}"
    print(f"cleared {what}: its entries are unreachable (they expire by their TTL)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="llm-middleware", description="Cache LLM calls by intent.")
    parser.add_argument("--version", action="version", version=f"llm-middleware {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = commands.add_parser("demo", help="run an offline demo workload through the cache")
    demo.add_argument("--latency", type=float, default=0.2, help="simulated LLM seconds per call")
    demo.add_argument("--json", action="store_true", help="print every trace event as JSON")
    demo.set_defaults(run=_cmd_demo)
    classify = commands.add_parser(
        "classify", help="show the policy a prompt gets, or measure the rules on labelled questions"
    )
    classify.add_argument("prompt", nargs="?")
    classify.add_argument("--rules", help="a TOML rules file (see docs/policy.md)")
    classify.add_argument(
        "--eval", metavar="FILE", help="a JSON list of {question, fact_type} (see docs/policy.md)"
    )
    classify.add_argument("--errors", action="store_true", help="with --eval: list the misses")
    classify.add_argument(
        "--model",
        action="store_true",
        help="add the embedding model (semantic extra); the shorter lifetime wins",
    )
    classify.add_argument("--json", action="store_true", help="machine-readable output")
    classify.set_defaults(run=_cmd_classify)
    stats = commands.add_parser("stats", help="summarize cache.result events of a JSON-lines log")
    stats.add_argument("logfile", help="a log file, or - for standard input")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.add_argument("--html", metavar="PAGE", help="also write a page of charts to PAGE")
    stats.add_argument(
        "--every",
        type=float,
        metavar="SECONDS",
        help="print a refreshed summary every SECONDS while reading, until the input ends",
    )
    stats.set_defaults(run=_cmd_stats)
    clear = commands.add_parser(
        "clear", help="make a namespace's (or every) cached entry unreachable"
    )
    clear.add_argument("--namespace", help="the namespace to clear (default: the whole cache)")
    clear.add_argument(
        "--tiers",
        metavar="URLS",
        help="the cache's backend URLs, ';'-separated (as in LLM_MIDDLEWARE_TIERS)",
    )
    clear.set_defaults(run=_cmd_clear)
    backends = commands.add_parser("backends", help="list the registered backends")
    backends.set_defaults(run=_cmd_backends)
    keygen = commands.add_parser(
        "keygen", help="print a new encryption key (32 random bytes, base64)"
    )
    keygen.set_defaults(run=_cmd_keygen)
    from .semantic.cli import add_semantic_command

    add_semantic_command(commands)
    return parser


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:  # e.g. ending ``stats - --every`` on a never-ending tail
        return 130
    except LLMMiddlewareError as exc:
        print(f"llm-middleware: error: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    A reader that stops early (``llm-middleware stats log | head -1``) ends the command
    quietly with status 141, as a shell tool stopped by ``SIGPIPE`` would.
    """
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's own final flush stays silent too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
