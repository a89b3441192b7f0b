"""``callpilot flows``: validate, import, publish, roll back, export and list IVR flows.

Flows live in the database (``ivr.store``): an editable draft per flow and immutable numbered
versions.  A running ``serve`` takes a newly published version within 2 s; calls already in
the IVR keep the version they started with.

    callpilot flows validate my_flow.json          # problems name the node: "menu: option 0 has no target"
    callpilot flows import main_ko my_flow.json    # store as the draft (invalid drafts are kept)
    callpilot flows publish main_ko --comment "shorter greeting"
    callpilot flows publish main_ko --file my_flow.json      # import + publish in one step
    callpilot flows rollback main_ko 3             # publishes version 3's document as a new version
    callpilot flows export main_ko [--version 2 | --draft] [-o out.json]
    callpilot flows list [main_ko] [--json]

With ``speech_model`` configured, validation also checks that every phrase of the model's
language is in the model's vocabulary.  Exit codes: 0 ok, 1 invalid flow, 2 usage/not found.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from callpilot.infra.config import Config

EXIT_INVALID = 1
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="flows_action", required=True)
    v = actions.add_parser("validate", help="check a flow document (file) or a stored draft")
    v.add_argument("source", help="a JSON file, or the name of a stored draft")
    i = actions.add_parser("import", help="store a JSON document as the draft of a flow")
    i.add_argument("name")
    i.add_argument("file")
    i.add_argument("--publish", action="store_true", help="publish it right away if valid")
    _authoring(i)
    p = actions.add_parser("publish", help="publish the draft as the next version")
    p.add_argument("name")
    p.add_argument("--file", help="import this JSON document as the draft first")
    _authoring(p)
    r = actions.add_parser("rollback", help="publish an earlier version again, as a new version")
    r.add_argument("name")
    r.add_argument("version", type=int)
    _authoring(r)
    e = actions.add_parser("export", help="print a version (default: live) or the draft")
    e.add_argument("name")
    which = e.add_mutually_exclusive_group()
    which.add_argument("--version", type=int)
    which.add_argument("--draft", action="store_true")
    e.add_argument("-o", "--output", help="write to this file instead of stdout")
    actions.add_parser("render", help="seed the built-in flows and render every live flow's "
                                      "prompts now (serve would do it in the background)")
    ls = actions.add_parser("list", help="flows with their live version, or one flow's history")
    ls.add_argument("name", nargs="?")
    ls.add_argument("--json", action="store_true")


def _authoring(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--author", default="cli")
    parser.add_argument("--comment", default="")


def run(config: Config, args: argparse.Namespace) -> int:
    from ivr.errors import FlowInvalid
    from ivr.store import FlowUnchanged, UnknownFlow
    if not getattr(args, "verbose", False):       # the command's answer, not migration chatter
        logging.getLogger().setLevel(logging.WARNING)
    try:
        validate = _validator(config)
        if args.flows_action == "validate" and Path(args.source).suffix == ".json":
            return _validate_file(validate, Path(args.source))
        with _store(config, validate) as store:
            if args.flows_action == "render":
                return _render(store, config)
            return ACTIONS[args.flows_action](store, args)
    except UnknownFlow as exc:
        return _fail(str(exc.args[0]) if exc.args else str(exc))
    except FlowUnchanged as exc:
        print(f"{exc}: nothing published")
        return 0
    except FlowInvalid as exc:
        _print_errors(f"flow {getattr(args, 'name', '')!s} not published", exc.errors)
        return EXIT_INVALID
    except _CliError as exc:
        return _fail(str(exc))


class _CliError(Exception):
    pass


def _validator(config: Config):
    """Validation like ``serve`` does it (vocabulary check per speech engine; transfer
    routes must be configured)."""
    from ivr.speech.model import SpeechUnavailable
    from ivr.wiring import load_engines, validator
    try:
        return validator(load_engines(config), set(config.routes))
    except SpeechUnavailable as exc:
        raise _CliError(f"speech: {exc}") from exc


@contextmanager
def _store(config: Config, validate) -> Iterator[Any]:
    """A FlowStore on the configured database."""
    from callpilot.infra.db import session as db
    from ivr.store import FlowStore
    engine = db.make_engine(config.db_url)
    try:
        db.create_schema(engine)
        yield FlowStore(db.make_sessionmaker(engine), validate=validate)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- actions


def _validate_file(validate, path: Path) -> int:
    return _report(str(path), validate(_read_document(path)))


def _validate_draft(store, args) -> int:
    return _report(f"draft {args.source}", store.check_draft(args.source))


def _report(label: str, errors) -> int:
    if errors:
        _print_errors(label, errors)
        return EXIT_INVALID
    print(f"{label}: valid")
    return 0


def _import(store, args) -> int:
    errors = store.save_draft(args.name, _read_document(Path(args.file)), args.author)
    if errors:
        _print_errors(f"draft {args.name} stored, but", errors)
        return EXIT_INVALID
    print(f"draft {args.name} stored: valid")
    return _publish_draft(store, args) if args.publish else 0


def _publish(store, args) -> int:
    """With ``--file``, the document replaces the draft only once it is known valid: a
    refused publish leaves the draft as it was."""
    if args.file:
        document = _read_document(Path(args.file))
        errors = store.validate(args.name, document)
        if errors:
            _print_errors(f"flow {args.name} not published (draft unchanged)", errors)
            return EXIT_INVALID
        store.save_draft(args.name, document, args.author)
    return _publish_draft(store, args)


def _publish_draft(store, args) -> int:
    version = store.publish(args.name, args.author, args.comment)
    print(f"flow {args.name}: version {version} published (live in serve within 2 s)")
    return 0


def _render(store, config: Config) -> int:
    import asyncio
    from ivr import flows as builtin
    from ivr.runner import prerender
    from ivr.tts import PromptCache
    from callpilot.infra.messages import builtin_messages
    for name in builtin.builtin_names():
        store.seed(name, builtin.load_builtin(name))
    prompts = PromptCache(config.prompts_dir, config.tts_voice, config.tts_rate)
    for name, number in sorted(store.latest_versions().items()):
        count = asyncio.run(prerender(prompts, store.version(name, number), messages=builtin_messages()))
        print(f"flow {name} v{number}: {count} prompts ready")
    return 0


def _rollback(store, args) -> int:
    version = store.rollback(args.name, args.version, args.author, args.comment)
    print(f"flow {args.name}: version {args.version} published again as version {version}")
    return 0


def _export(store, args) -> int:
    if args.draft:
        document = store.draft(args.name)
    else:
        number = args.version or store.latest_version(args.name)
        if number is None:
            raise _CliError(f"flow {args.name!r} has no published version")
        document = store.document(args.name, number)
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"written {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _list(store, args) -> int:
    rows = _history(store, args.name) if args.name else _overview(store)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
    elif args.name:
        for row in rows:
            extra = f" (rollback of {row['rollback_of']})" if row["rollback_of"] else ""
            print(f"v{row['version']:<4} {row['published_at']:%Y-%m-%d %H:%M:%S}  "
                  f"{row['published_by']:<10} {row['comment']}{extra}")
    else:
        for row in rows:
            print(f"{row['name']:<20} live v{row['live'] or '-':<4} {row['versions']} version(s)")
    return 0


def _overview(store) -> list[dict[str, Any]]:
    latest = store.latest_versions()
    return [{"name": name, "live": latest.get(name), "versions": latest.get(name, 0)}
            for name in store.names()]


def _history(store, name: str) -> list[dict[str, Any]]:
    versions = store.versions(name)
    if not versions:
        raise _CliError(f"flow {name!r} has no published version")
    return [{"version": v.version, "published_at": v.published_at, "published_by": v.published_by,
             "comment": v.comment, "rollback_of": v.rollback_of} for v in versions]


ACTIONS = {"validate": _validate_draft, "import": _import, "publish": _publish,
           "rollback": _rollback, "export": _export, "list": _list}


# --------------------------------------------------------------------------- helpers


def _read_document(path: Path) -> dict[str, Any]:
    from ivr.schema import MAX_DOCUMENT_BYTES
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise _CliError(f"{path}: {path.stat().st_size} bytes; a flow document has at "
                            f"most {MAX_DOCUMENT_BYTES}")
        document = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)
    except FileNotFoundError:
        raise _CliError(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise _CliError(f"{path}: cannot be read: {exc.__class__.__name__}") from None
    except json.JSONDecodeError as exc:
        raise _CliError(f"{path}: not JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except _DuplicateKey as exc:
        raise _CliError(f"{path}: key {exc.args[0]!r} appears twice in one object") from None
    if not isinstance(document, dict):
        raise _CliError(f"{path}: a flow document must be a JSON object")
    return document


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON objects with a key twice are refused (json keeps the last one silently)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _print_errors(label: str, errors) -> None:
    print(f"{label}: {len(errors)} problem(s)", file=sys.stderr)
    for error in errors:
        print(f"  {error}", file=sys.stderr)


def _fail(message: str) -> int:
    print(f"callpilot flows: {message}", file=sys.stderr)
    return EXIT_USAGE
