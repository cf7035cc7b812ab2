"""The ``catalog-core`` command line: import, read, delete and purge a catalog's products.

Products go in as JSON Lines (one upsert payload per line) and come out in their wire form (R31).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import re
import socket
import sqlite3
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Final, TypeVar
from urllib.parse import unquote, unquote_plus

import click

import catalog_core as cc
from catalog_core import transfer
from catalog_core.catalog import MAX_PAGE_SIZE
from catalog_core.wire.decode import check_account
from catalog_core.wire.errors import error_to_wire

__all__ = ["main"]

_F = TypeVar("_F", bound=Callable[..., Any])

# JSON's own whitespace: a line holding only these is blank. bytes.strip() would also take
# \x0b and \x0c, which JSON refuses, and so hide a bad line.
_JSON_WHITESPACE = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"
_BLANK = re.compile(rb"[ \t\r\n]*")  # matched in place: a blank check copies no line
#: How a line written by ``export`` starts: such a line may be longer than a request body.
_RECORD_START = re.compile(rb'[ \t]*\{[ \t]*"catalogCoreExport"')
#: Bytes read at a time past the end of a line too long to import.
_CHUNK = 2**20
#: The ``--db`` of a catalog kept in the process's memory, gone when it ends.
MEMORY_URL = "memory://"
#: The balance of a new account, as ``catalog_core.tryon.DEFAULT_CREDITS`` (T16).
_DEFAULT_CREDITS = 10
_MAX_CREDITS = 10**15
# libpq parameters whose values are secrets, matched after percent-decoding, as libpq reads them.
_SECRET_PARAMETERS = frozenset({"password", "passfile", "sslpassword"})
_PARAMETER = re.compile(r"(?<=[?&])([^=&?]*)=([^&]*)")


#: Every command answers -h as --help.
_CONTEXT: Final = {"help_option_names": ["-h", "--help"]}
#: The account of a command given none (the public API's key names one; here it is a name).
DEFAULT_ACCOUNT: Final = "default"


class _CatalogGroup(click.Group):
    """A group that turns catalog and database failures into clean exits, never tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a ``CatalogError`` goes to stderr as its wire body, exit 1.

        Raises:
            click.ClickException: the database failed (locked too long, corrupt, unwritable).
        """
        try:
            return super().invoke(ctx)
        except cc.CatalogError as exc:
            click.echo(json.dumps(error_to_wire(exc)), err=True)
            ctx.exit(1)
        except _database_errors() as exc:
            raise click.ClickException(f"database error: {exc}") from None


def _checked_account(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_account(value)
    except cc.CatalogError as exc:
        raise click.BadParameter(exc.details[0].message if exc.details else exc.message) from None


def _account_option(command: _F) -> _F:
    """A command's ``--account``: given after the command, it wins over the group's."""
    return click.option(
        "--account",
        default=None,
        callback=_checked_account,
        help="The tenant whose products to work on [default: the group's --account, which is "
        "'default' unless CATALOG_CORE_ACCOUNT is set].",
    )(command)


def _db_option(command: _F) -> _F:
    """A command's ``--db``: given after the command, it wins over the group's."""
    return click.option(
        "--db",
        "target",
        default=None,
        help="The catalog, as the group's --db (which it overrides).",
    )(command)


def _account(ctx: click.Context, account: str | None) -> str:
    """Return the account a command works on: its own ``--account``, else the group's."""
    if account is not None:
        return account
    group = ctx.find_root().params.get("account")
    return group if isinstance(group, str) else DEFAULT_ACCOUNT


def _account_by_default(ctx: click.Context, account: str | None) -> bool:
    """Whether the account was given nowhere: neither option nor ``CATALOG_CORE_ACCOUNT``."""
    root = ctx.find_root()
    return account is None and root.get_parameter_source("account") in (
        click.core.ParameterSource.DEFAULT,
        None,
    )


def _database_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a failing database raises: SQLite's always, psycopg's when installed."""
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, TimeoutError)
    try:
        import psycopg
    except ImportError:  # the postgres extra is not installed
        return errors
    return (*errors, psycopg.Error)


def _open_catalog(
    ctx: click.Context, target: str | None = None, *, close: bool = True, create: bool = False
) -> cc.Catalog:
    """Open the catalog of ``target`` (default: the group's ``--db``).

    Opened here rather than in the group so that ``--help`` never creates a database. The
    repository is closed when the command ends, unless ``close`` is false (the server closes it
    itself, after its last request). Only with ``create`` (``import``, ``serve``) may an SQLite
    file that does not exist be created: a mistyped ``--db`` of another command is an error,
    not a new empty catalog.

    Raises:
        click.ClickException: the path or URL does not name a usable catalog.
    """
    if target is None:
        target = _group_db(ctx)
    if target == MEMORY_URL:  # a throwaway catalog: a stand-in server's, for a test run
        return cc.Catalog(cc.MemoryRepository())
    if not target.strip():
        raise click.ClickException("--db is empty: give an SQLite file path or a URL")
    if "://" not in target and Path(target).is_dir():
        raise click.ClickException(
            f"cannot open the catalog database '{target}': it is a directory"
        )
    path = _sqlite_file(target)
    if not create and path is not None and not path.exists():
        raise click.ClickException(
            f"no catalog at '{target}': the file does not exist (a mistyped --db?); "
            "`catalog-core import` and `catalog-core serve` create one"
        )
    # RuntimeError: a catalog schema this version cannot read; ValueError: an unknown URL;
    # ImportError: a postgresql:// URL without the postgres extra.
    failures: tuple[type[BaseException], ...] = (
        *_database_errors(),
        OSError,
        RuntimeError,
        ValueError,
        ImportError,
    )
    try:
        repository = cc.open_repository(target)
    except failures as exc:
        raise click.ClickException(
            f"cannot open the catalog database '{_redact(target)}': {exc}"
        ) from None
    if close:
        ctx.find_root().call_on_close(repository.close)
    return cc.Catalog(repository)


def _sqlite_file(target: str) -> Path | None:
    """Return the file an SQLite path or ``sqlite:///`` URL names (``None``: another kind)."""
    if target.startswith("sqlite:///"):
        path = unquote(target[len("sqlite:///") :])
        return None if path in ("", ":memory:") else Path(path)
    if "://" in target or target == ":memory:":
        return None
    return Path(target)


def _group_db(ctx: click.Context) -> str:
    """Return the group's ``--db``: the catalog a command works on unless it names its own.

    Raises:
        click.UsageError: the group was given no catalog (only a caller that bypasses the
            option's default can do that).
    """
    db = ctx.find_root().params.get("db")
    if not isinstance(db, str):
        raise click.UsageError("no catalog given: pass --db or set CATALOG_CORE_DB", ctx)
    return db


def _redact(target: str) -> str:
    """Return a database path or URL fit to print: every password in a URL becomes ``***``.

    Only the secrets are replaced; every other character stays as written, so the message names
    the database exactly as it was given (re-serialising a parsed URL would turn
    ``sqlite:////abs`` into ``sqlite://abs``). The spans hidden cover both readings of a URL:
    libpq's, whose credentials end at the first ``@`` before any ``/``, and ``urlsplit``'s,
    whose end at the last ``@`` before any of ``/?#``.
    """
    scheme, sep, rest = target.partition("://")
    if not sep:
        return target
    slash = rest.find("/")
    at = rest.rfind("@", 0, len(rest) if slash < 0 else slash)
    colon = rest.find(":", 0, max(at, 0))
    if at > 0 and 0 <= colon < at - 1:  # a non-empty password: user:password@
        rest = rest[: colon + 1] + "***" + rest[at:]
    # A parameter starts after any '?' or '&' and its value runs to the next '&', as libpq reads
    # it (a '?' or '#' in a value belongs to the value); scanning every '?' also covers a query
    # that a stray '@' or '?' would hide from one reading or the other.
    return scheme + sep + _PARAMETER.sub(_redact_parameter, rest)


def _redact_parameter(match: re.Match[str]) -> str:
    name = match[1]
    return f"{name}=***" if unquote_plus(name).lower() in _SECRET_PARAMETERS else match[0]


@click.group(cls=_CatalogGroup, context_settings=_CONTEXT)
@click.version_option(cc.__version__, "--version", prog_name="catalog-core")
@click.option(
    "--db",
    default="./catalog.db",
    show_default=True,
    envvar="CATALOG_CORE_DB",
    show_envvar=True,
    help="The catalog: an SQLite file path (created by import and serve when missing), "
    "sqlite:///path, postgresql://user@host/dbname[?schema=name][&create_schema=false] "
    "(false: a schema made by schema-sql, opened without DDL), or memory:// (kept in the "
    "process's memory, gone when it ends: for a throwaway stand-in server). Also accepted "
    "after the command.",
)
@click.option(
    "--account",
    default=DEFAULT_ACCOUNT,
    show_default=True,
    envvar="CATALOG_CORE_ACCOUNT",
    show_envvar=True,
    callback=_checked_account,
    help="The tenant whose products to work on. Also accepted after the command.",
)
def main(db: str, account: str) -> None:
    """Manage a product catalog in an SQLite file or a PostgreSQL database.

    Errors of the catalog are printed to stderr as their JSON wire body, with exit status 1.
    """


def _remaining_bytes(source: IO[bytes]) -> int | None:
    """Return how many bytes are left to read, or ``None`` when that cannot be known (a pipe)."""
    try:
        if not source.seekable():
            return None
        here = source.tell()
        end = source.seek(0, 2)
        source.seek(here)
    except OSError:
        return None
    return end - here


class _Spool:
    """A list of JSON objects that moves to a temporary file once it passes 1 MiB."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=2**20)  # noqa: SIM115 - see __exit__
        self._count = 0

    def __enter__(self) -> _Spool:
        return self

    def __exit__(self, *_: object) -> None:
        self._file.close()

    def append(self, entry: dict[str, Any]) -> None:
        # ASCII escapes: a lone surrogate (in an unknown key, say) survives the trip.
        self._file.write(json.dumps(entry).encode("ascii") + b"\n")
        self._count += 1

    def extend(self, entries: Iterable[dict[str, Any]]) -> None:
        for entry in entries:
            self.append(entry)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._file.seek(0)
        for line in self._file:
            entry: dict[str, Any] = json.loads(line)
            yield entry


def _json_text(entry: dict[str, Any]) -> str:
    """Return ``entry`` as JSON text: non-ASCII kept, lone surrogates (no UTF-8) escaped."""
    text = json.dumps(entry, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(entry)
    return text


def _printable(text: str) -> str:
    r"""Return ``text`` with lone surrogates (which UTF-8 cannot carry) written as ``\udXXX``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _joined(texts: Iterable[str]) -> Iterator[str]:
    for index, text in enumerate(texts):
        yield text if index == 0 else ", " + text


def _show_line(number: int | None) -> str | None:
    return None if number is None else f"line {number}"


def _lines(
    source: IO[bytes], limit: int, record_limit: int | None = None
) -> Iterator[tuple[int, bytes | int, int]]:
    """Yield ``(number, line, size)`` per line of ``source``, never holding more than ``limit``.

    ``line`` is the line's bytes (a first line's byte order mark removed); ``b""`` for a line
    that holds only JSON whitespace (a blank line, skipped); for a line longer than ``limit``
    bytes, its length, the line being read past in bounded chunks rather than held. A line that
    starts as ``export`` writes a record, ``{"catalogCoreExport"``, may be up to
    ``record_limit`` bytes instead (its length, when it is longer, is an ``_OverlongRecord``).
    ``size`` is the number of bytes read, for the progress bar.
    """
    number = 0
    while True:
        # A byte order mark (Windows editors write one) does not count toward the limit, nor
        # does the line's end (\n or \r\n): the limit is the payload's, as a request body's.
        mark = len(_BOM) if number == 0 else 0
        raw = source.readline(limit + 3 + mark)
        if not raw:
            return
        number += 1
        line = raw.removeprefix(_BOM) if mark else raw
        size = len(raw)
        if len(line) - _ending(line) <= limit:
            yield number, b"" if _BLANK.fullmatch(line) else line, size
            continue
        record = record_limit is not None and _RECORD_START.match(line) is not None
        if record and record_limit is not None:
            if not line.endswith(b"\n"):
                raw = b""  # the line holds what is kept of it
                rest = source.readline(record_limit - limit)
                line, size = line + rest, size + len(rest)
                del rest
            if len(line) - _ending(line) <= record_limit:
                yield number, line, size
                continue
        blank, ended = _BLANK.fullmatch(line) is not None, line.endswith(b"\n")
        mark = size - len(line)
        last = line[-2:]
        del raw, line
        while not ended:
            chunk = source.readline(_CHUNK)
            size += len(chunk)
            last = (last + chunk)[-2:]
            blank = blank and _BLANK.fullmatch(chunk) is not None
            ended = not chunk or chunk.endswith(b"\n")
        length = size - mark - _ending(last)
        yield number, b"" if blank else _OverlongRecord(length) if record else length, size


class _OverlongRecord(int):
    """The length of a line that starts as an export record and is over the record limit."""


def _ending(line: bytes) -> int:
    r"""Return how many bytes of ``line`` are its end: 2 for \r\n, 1 for \n, else 0."""
    if line.endswith(b"\r\n"):
        return 2
    return 1 if line.endswith(b"\n") else 0


@main.command("import")
@click.argument("file", type=click.File("rb"))
@_db_option
@_account_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--strict", is_flag=True, help="Exit with status 1 when any line was rejected.")
@click.pass_context
def import_(
    ctx: click.Context,
    file: IO[bytes],
    target: str | None,
    account: str | None,
    as_json: bool,
    strict: bool,
) -> None:
    """Upsert the products of FILE, JSON Lines with one upsert payload per line ('-' for stdin).

    A line that `catalog-core export` wrote is restored as it was exported (fields, timestamps,
    version and uploaded images), over whatever the account holds under its id. Each line is
    its own upsert: a rejected line is reported with its number and error code and
    changes nothing, and the lines after it are still imported. Lines are written up to 500 (and
    8 MiB) to a transaction, so an interrupted import keeps whole batches only; memory stays
    flat however large the file, and a line over the request limit is refused
    (PAYLOAD_TOO_LARGE) without being read whole (an export record may take twice that).
    Accepted lines that used a
    deprecated shape or an unknown field are listed after the rejections as warnings. Blank
    lines are skipped. A progress bar is drawn on stderr when it is a terminal.
    """
    catalog = _open_catalog(ctx, target, create=True)
    account = _account(ctx, account)
    limit = catalog.limits.max_request_bytes
    # An export record carries its uploads in base64: it may be twice the request limit.
    line_limit = transfer.export_limits(catalog.limits).max_request_bytes
    created = updated = 0
    # On disk past 1 MiB each, so memory stays flat however many lines are rejected.
    rejected, warnings = ctx.with_resource(_Spool()), ctx.with_resource(_Spool())
    name = getattr(file, "name", None)  # stdin has "<stdin>"; an in-memory stream has none
    lines = _lines(file, limit, line_limit)
    progress = click.progressbar(
        itertools.count(1),  # never iterated: only gives the bar its item type (line numbers)
        length=_remaining_bytes(file),  # None for a pipe: the bar then only pulses
        label=f"Importing {name}" if isinstance(name, str) else "Importing",
        file=sys.stderr,
        hidden=not sys.stderr.isatty(),
        item_show_func=_show_line,
    )
    # Lines are upserted in batches, one transaction each (Catalog.upsert_many, bounded by count
    # and by bytes); each result is matched to its line through this queue of (line number,
    # bytes read up to it, the refusal of a line too long to read). It holds no line's bytes.
    pending: deque[tuple[int, int, cc.CatalogError | None]] = deque()
    skipped = 0

    def payloads() -> Iterator[bytes]:
        nonlocal skipped
        first = True
        for number, line, size in lines:
            if line == b"":
                skipped += size  # blank lines are skipped; the bar counts them with the next
                continue
            if first and isinstance(line, bytes) and line.lstrip(_JSON_WHITESPACE)[:1] == b"[":
                # One JSON array, pretty-printed most likely: each line would be refused alone.
                raise click.ClickException(
                    f"line {number} starts a JSON array: import reads JSON Lines, one product "
                    "object per line (an array's items as lines: jq -c '.[]' FILE); nothing "
                    "was imported"
                )
            first = False
            # A line over the request limit is refused unread, as the catalog refuses such a body.
            refusal = None
            if not isinstance(line, bytes):
                most = line_limit if isinstance(line, _OverlongRecord) else limit
                refusal = cc.PayloadTooLarge.for_size(line, most)
            pending.append((number, skipped + size, refusal))
            skipped = 0
            if isinstance(line, bytes):
                end = _ending(line)  # not the payload's: the request limit is counted without it
                yield line[:-end] if end else line

    def record(number: int, result: cc.UpsertResult | cc.CatalogError) -> None:
        nonlocal created, updated
        if isinstance(result, cc.CatalogError):
            rejected.append({"line": number, "code": result.code, "message": result.message})
            return
        if result.created:
            created += 1
        else:
            updated += 1
        warnings.extend({"line": number, "code": w.code, "path": w.path} for w in result.warnings)
        if result.warning_count > len(result.warnings):  # the catalog kept the first ones
            warnings.append({"line": number, "more": result.warning_count - len(result.warnings)})

    def refused_unread(bar: Any) -> None:
        """Report the overlong lines at the head of the queue, which have no upsert result."""
        while pending and (error := pending[0][2]) is not None:
            number, size, _ = pending.popleft()
            record(number, error)
            bar.update(size, number)

    with progress as bar:
        # The bar counts bytes, not lines, so this loop drives it instead of iterating it.
        for result in catalog.upsert_many(account, payloads(), restore=True):
            refused_unread(bar)
            number, size, _ = pending.popleft()
            record(number, result)
            bar.update(size, number)
        refused_unread(bar)
        bar.update(skipped)

    if as_json:
        # json.dumps of {created, updated, rejected, warnings}, written a piece at a time.
        click.echo(f'{{"created": {created}, "updated": {updated}, "rejected": [', nl=False)
        for text in _joined(map(_json_text, rejected)):
            click.echo(text, nl=False)
        click.echo('], "warnings": [', nl=False)
        for text in _joined(map(_json_text, warnings)):
            click.echo(text, nl=False)
        click.echo("]}")
    else:
        click.echo(f"created {created}, updated {updated}, rejected {len(rejected)}")
        for entry in rejected:
            click.echo(_printable(f"line {entry['line']}: {entry['code']}: {entry['message']}"))
        for entry in warnings:
            if "more" in entry:
                click.echo(f"line {entry['line']}: {entry['more']} more warnings not listed")
                continue
            click.echo(
                _printable(f"line {entry['line']}: warning: {entry['code']} at {entry['path']}")
            )
    if strict and rejected:
        ctx.exit(1)


@main.command("get")
@click.argument("external_id", metavar="ID")
@_db_option
@_account_option
@click.pass_context
def get(ctx: click.Context, external_id: str, target: str | None, account: str | None) -> None:
    """Print the live product ID in its wire form.

    A product that is missing or expired prints the error body (PRODUCT_NOT_FOUND) on stderr
    and exits 1; on a terminal, when no account was given, a second line says which one was
    searched.
    """
    catalog = _open_catalog(ctx, target)
    try:
        product = catalog.get(_account(ctx, account), external_id)
    except cc.ProductNotFound as exc:
        # Said to a person only: a script reads stderr as the error's JSON body alone.
        if not (_account_by_default(ctx, account) and sys.stderr.isatty()):
            raise
        click.echo(json.dumps(error_to_wire(exc)), err=True)
        click.echo(
            f"note: searched the account '{DEFAULT_ACCOUNT}', the default: pass --account "
            "(or set CATALOG_CORE_ACCOUNT) to search another",
            err=True,
        )
        ctx.exit(1)
    click.echo(json.dumps(cc.to_wire(product), ensure_ascii=False))


@main.command("list")
@_db_option
@_account_option
@click.option(
    "--page-size",
    type=click.IntRange(1, MAX_PAGE_SIZE),
    default=MAX_PAGE_SIZE,
    show_default=True,
    help="How many products to read per page.",
)
@click.pass_context
def list_(ctx: click.Context, target: str | None, account: str | None, page_size: int) -> None:
    """Print every live product as JSON Lines, in ascending order of externalId."""
    catalog = _open_catalog(ctx, target)
    account = _account(ctx, account)
    cursor: str | None = None
    while True:
        page = catalog.list(account, limit=page_size, cursor=cursor)
        for product in page.items:
            click.echo(json.dumps(cc.to_wire(product), ensure_ascii=False))
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


@main.command("export")
@_db_option
@_account_option
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path),
    default="-",
    show_default=True,
    help="Where to write the records ('-': stdout). A file appears only once it is whole.",
)
@click.pass_context
def export(ctx: click.Context, target: str | None, account: str | None, output: Path) -> None:
    """Write every live product of the account as JSON Lines that `import` restores.

    One record per product, one-shot products included, in ascending order of externalId: its
    wire form, its version and the bytes of its uploaded images (base64), so that
    `catalog-core import` gives back every product as it was, timestamps, version and images
    included. Expired products are left out. Memory stays flat however large the catalog. With
    --output, the records go to a temporary file beside it, which takes its name once every
    record is written: a failed export leaves no partial file.
    """
    catalog = _open_catalog(ctx, target)
    account = _account(ctx, account)
    try:
        records = transfer.export_records(catalog.repository, account, now=catalog.now())
    except TypeError as exc:  # a repository that cannot walk its products
        raise click.ClickException(str(exc)) from None
    lines = (
        json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n" for record in records
    )
    if str(output) == "-":
        for line in lines:
            click.echo(line, nl=False)
        return
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=output.parent, prefix=f".{output.name}.", delete=False
    ) as partial:
        try:
            partial.writelines(lines)
        except BaseException:
            partial.close()
            Path(partial.name).unlink()
            raise
    Path(partial.name).replace(output)


@main.command("copy")
@click.option(
    "--from",
    "source",
    required=True,
    metavar="DB",
    help="The catalog to copy from: an SQLite path or a URL, as --db.",
)
@click.option(
    "--to",
    "destination",
    required=True,
    metavar="DB",
    help="The catalog to copy into, created when it is an SQLite file that does not exist.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=transfer.DEFAULT_PAGE_SIZE,
    show_default=True,
    help="Products read, then written, at a time (in one transaction per account).",
)
@click.pass_context
def copy(ctx: click.Context, source: str, destination: str, batch_size: int) -> None:
    """Copy every live product of every account, with its uploaded images, into another catalog.

    Each product is written as it is (fields, timestamps, version), over what the destination
    holds under its id; products only the destination holds stay. Run twice, it leaves what it
    left the first time, so an interrupted copy is finished by running it again. Expired
    products and the try-on flow's records (person images, generations, credits) are not
    copied. Written in batches, one transaction per account of a batch; memory stays flat.
    A product the destination holds live, of another content and at a version as high or
    higher, gets the next version rather than an old one again. Prints {"copied": N}; a
    progress bar is drawn on stderr when it is a terminal.
    """
    if _same_catalog(source, destination):
        raise click.UsageError("--from and --to name the same catalog", ctx)
    origin = _open_catalog(ctx, source)
    into = _open_catalog(ctx, destination, create=True)
    now = origin.now()
    try:
        total = transfer.scanner(origin.repository).count_live(account=None, now=now)
    except TypeError as exc:  # a repository that cannot walk its products
        raise click.ClickException(str(exc)) from None
    copied = 0
    progress = click.progressbar(
        length=total,
        label="Copying",
        file=sys.stderr,
        hidden=not sys.stderr.isatty(),
        show_pos=True,
    )
    with progress as bar:
        for step in transfer.copy(
            origin.repository, into.repository, now=now, batch_size=batch_size
        ):
            copied += step.products
            bar.update(step.products)
    click.echo(json.dumps({"copied": copied}))


def _same_catalog(one: str, other: str) -> bool:
    """Whether two --db values name the same catalog (the same string, or the same file)."""
    if one == other and one != MEMORY_URL:
        return True
    first, second = _sqlite_file(one), _sqlite_file(other)
    return first is not None and second is not None and first.resolve() == second.resolve()


@main.command("delete")
@click.argument("external_id", metavar="ID")
@_db_option
@_account_option
@click.pass_context
def delete(ctx: click.Context, external_id: str, target: str | None, account: str | None) -> None:
    """Delete the live product ID; prints nothing on success."""
    _open_catalog(ctx, target).delete(_account(ctx, account), external_id)


@main.command("schema-sql")
@click.option("--schema", default="catalog_core", show_default=True, help="The schema to create.")
@click.option(
    "--citus",
    is_flag=True,
    help="End with the distribution step of a Citus coordinator: catalog_meta a reference "
    "table, the other tables distributed by account, colocated (docs/storage.md, "
    '"Scaling out with Citus").',
)
def schema_sql(schema: str, citus: bool) -> None:
    """Print the SQL that creates the PostgreSQL schema, for an administrator to run beforehand.

    For databases where the application may not run DDL: run the output once (in one
    transaction: ``psql --single-transaction``), then open the catalog with
    ``--db 'postgresql://…?schema=NAME&create_schema=false'`` (or ``create_schema=False`` in
    Python): the catalog then only checks the schema version. The output can be run again: it
    creates only what is missing, and migrates a schema made by an earlier version.
    """
    from catalog_core.repository._postgres_schema import schema_sql as ddl

    try:
        click.echo(ddl(schema, distributed=citus), nl=False)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--schema") from None


@main.command("purge")
@_db_option
@click.pass_context
def purge(ctx: click.Context, target: str | None) -> None:
    """Delete everything expired and every unreferenced image; print what went.

    Prints ``{"purged": N, "personImages": N, "generations": N}``: the products, person images
    and generations removed. The purge covers every account of the database. A catalog whose
    storage keeps no try-on state prints ``{"purged": N}`` alone.
    """
    from catalog_core.repository.base import TryOnRepository

    catalog = _open_catalog(ctx, target)
    if not isinstance(catalog.repository, TryOnRepository):
        click.echo(json.dumps({"purged": catalog.purge_expired()}))
        return
    from catalog_core.tryon import TryOn

    counts = TryOn(catalog).purge_expired()
    click.echo(
        json.dumps(
            {
                "purged": counts.products,
                "personImages": counts.person_images,
                "generations": counts.generations,
            }
        )
    )


def _credits_option(help: str) -> Callable[[_F], _F]:
    return click.option(
        "--credits",
        "initial_credits",
        type=click.IntRange(0, _MAX_CREDITS),
        default=_DEFAULT_CREDITS,
        show_default=True,
        help=help,
    )


@main.command("credits")
@click.argument("account", metavar="ACCOUNT")
@click.option(
    "--add",
    type=click.IntRange(-_MAX_CREDITS, _MAX_CREDITS),
    default=None,
    help="Add N credits first (a negative N takes them away; the balance stays at 0 or more).",
)
@_credits_option("The balance ACCOUNT starts with if it has none yet, as serve's --credits.")
@_db_option
@click.pass_context
def credits(
    ctx: click.Context, account: str, add: int | None, initial_credits: int, target: str | None
) -> None:
    """Print ACCOUNT's try-on credit balance as {"creditBalance": N}.

    With --add, top it up first: the server's API has no top-up, as the public one has none.
    """
    try:
        account = check_account(account)
    except cc.CatalogError as exc:
        raise click.BadParameter(
            exc.details[0].message if exc.details else exc.message, param_hint="ACCOUNT"
        ) from None
    from catalog_core.tryon import TryOn

    catalog = _open_catalog(ctx, target)
    try:
        tryon = TryOn(catalog, initial_credits=initial_credits)
    except TypeError as exc:  # a repository that keeps no try-on state
        raise click.ClickException(str(exc)) from None
    balance = tryon.credits(account) if add is None else tryon.add_credits(account, add)
    click.echo(json.dumps({"creditBalance": balance}))


def _a_number(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if math.isnan(value):  # FloatRange lets NaN through: it compares false with both bounds
        raise click.BadParameter("must be a number of seconds, not nan")
    return value


def _positive_number_option(
    name: str, default: float, help: str, *, most: float = 86400
) -> Callable[[_F], _F]:
    """A ``serve`` option: a number above 0, at most ``most`` (seconds, or bytes a second)."""
    return click.option(
        name,
        type=click.FloatRange(min=0, min_open=True, max=most),
        default=default,
        show_default=True,
        help=help,
        callback=_a_number,
    )


def _public_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        from catalog_core.server.tryon import check_public_url
    except ImportError:  # serve says what is missing
        return value
    try:
        return check_public_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _api_key_pair(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """Parse ``KEY=ACCOUNT`` pairs, never echoing a key back (it would land in a CI log)."""
    keys: dict[str, str] = {}
    for value in values:
        # The last '=' splits: keys are often base64 and end in '=', account names rarely hold one.
        key, sep, account = value.rpartition("=")
        if not sep or not key or not account:
            raise click.BadParameter("give KEY=ACCOUNT, both non-empty")
        if not all("!" <= c <= "~" for c in key):
            raise click.BadParameter(
                "a key must be visible ASCII without spaces, as an HTTP header carries it"
            )
        try:
            check_account(account)
        except cc.CatalogError as exc:
            raise click.BadParameter(f"account: {exc.details[0].message}") from None
        if key in keys:
            raise click.BadParameter("each key may be given once")  # never echo the key
        keys[key] = account
    return keys


@main.command("serve")
@_db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="The port to listen on; 0 picks a free one (printed at start).",
)
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    metavar="KEY=ACCOUNT",
    callback=_api_key_pair,
    help="Accept only these keys, each for its account (repeatable). Without it any key is "
    "accepted and is its own account.",
)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=None,
    help="Requests per account per minute; past it, 429 RATE_LIMITED with Retry-After. Off "
    "by default.",
)
@click.option(
    "--shutdown-timeout",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Seconds to let requests in flight complete after SIGTERM or Ctrl+C.",
)
@_positive_number_option(
    "--body-timeout",
    30.0,
    "Seconds a request body may go without a byte arriving (then 408 REQUEST_TIMEOUT).",
)
@_positive_number_option(
    "--body-min-rate",
    1024.0,  # DEFAULT_BODY_MIN_RATE: the CLI does not import the server extra
    "Bytes a second a request body must average after its first --body-timeout seconds "
    "(then 408 REQUEST_TIMEOUT): a body that trickles in cannot hold a connection for long.",
    most=2**30,
)
@_positive_number_option(
    "--header-timeout",
    10.0,  # DEFAULT_HEAD_TIMEOUT: the CLI does not import the server extra
    "Seconds a connection may take to send a request's line and headers (then 408 "
    "REQUEST_TIMEOUT, or a silent close if it sent nothing).",
)
@_positive_number_option(
    "--send-timeout",
    30.0,  # DEFAULT_SEND_TIMEOUT: the CLI does not import the server extra
    "Seconds a client may leave a response's bytes waiting without taking any (then the "
    "connection is closed): a client that never reads cannot hold a connection.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=None,
    help="Connections open at once; past it a new one is answered 503 UNAVAILABLE and closed. "
    "Default: the process's descriptor limit less 200.",
)
@_credits_option("The try-on credit balance of an account the first time it is seen.")
@click.option(
    "--generation-seconds",
    type=click.FloatRange(0, 86400),
    default=2.0,
    show_default=True,
    callback=_a_number,
    help="Seconds of the catalog's clock a generation takes (a product titled mock: none).",
)
@click.option(
    "--sync-timeout",
    type=click.FloatRange(0, 86400),
    default=90.0,
    show_default=True,
    callback=_a_number,
    help="Seconds POST /try-on/sync waits for its generation before it answers 202.",
)
@click.option(
    "--public-url",
    default=None,
    metavar="URL",
    callback=_public_url,
    help="The server's address as clients reach it (https://tryon.example.test), when it is "
    "behind a proxy: the base of imageUrl and resultImageUrl. Default: each request's own.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log a line per request (method, path with listing cursors cut out, status), at info.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    target: str | None,
    host: str,
    port: int,
    api_keys: dict[str, str],
    rate_limit: int | None,
    shutdown_timeout: int,
    body_timeout: float,
    body_min_rate: float,
    header_timeout: float,
    send_timeout: float,
    max_connections: int | None,
    initial_credits: int,
    generation_seconds: float,
    sync_timeout: float,
    public_url: str | None,
    log_level: str,
    access_log: bool,
) -> None:
    """Serve the catalog over HTTP as the public Try-On API, under /tryon/v1.

    POST/GET /tryon/v1/products and GET/DELETE /tryon/v1/products/{externalId}; the try-on
    flow: POST /images/upload, /try-on and /try-on/sync, GET /generations/{id} and
    /account/credits, DELETE /customers/{id}, and media URLs that need no key; the OpenAPI
    document at /tryon/v1/openapi.json. Needs the server extra
    (pip install '.[server]' in a checkout). SIGTERM or Ctrl+C stops it after the requests in
    flight complete; API keys never appear in its log.
    """
    try:
        import uvicorn

        from catalog_core.repository.base import TryOnRepository
        from catalog_core.server import API_BASE, create_app
        from catalog_core.server.logs import log_config
        from catalog_core.server.protocol import (
            Server,
            head_timeout_protocol,
        )
        from catalog_core.tryon import LocalEngine, TryOn
    except ImportError as exc:
        raise click.ClickException(
            "the server needs the server extra (Starlette, uvicorn, python-multipart, orjson), "
            f"which is not installed: pip install '.[server]' in a checkout of catalog_core ({exc})"
        ) from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    target = target or _group_db(ctx)
    ctx.call_on_close(sock.close)
    catalog = _open_catalog(ctx, target, close=False, create=True)
    tryon = None
    if isinstance(catalog.repository, TryOnRepository):
        tryon = TryOn(
            catalog,
            engine=LocalEngine(generation_seconds=generation_seconds),
            initial_credits=initial_credits,
        )
    app = create_app(
        catalog,
        tryon=tryon,
        sync_timeout=sync_timeout,
        public_url=public_url,
        api_keys=api_keys or None,
        rate_limit=rate_limit,
        close_on_shutdown=True,
        body_timeout=body_timeout,
        body_min_rate=body_min_rate,
    )
    config = uvicorn.Config(
        app,
        http=head_timeout_protocol(
            header_timeout,
            send_timeout=send_timeout,
            answer_at_once=app.state.answer_at_once,
        ),
        log_level=log_level,
        log_config=log_config(log_level),
        access_log=access_log,
        timeout_graceful_shutdown=shutdown_timeout,
        server_header=False,
    )
    bound = sock.getsockname()[1]
    shown_host = f"[{host}]" if family == socket.AF_INET6 else host
    keys = f"{len(api_keys)} API keys" if api_keys else "any API key, each its own account"
    limit = f"{rate_limit} requests per account per minute" if rate_limit else "no rate limit"
    ready = (
        f"catalog-core serving http://{shown_host}:{bound}{API_BASE} from {_redact(target)} "
        f"({keys}; {limit}); Ctrl+C stops it"
    )

    class AnnouncingServer(Server):
        """Says it is serving only once it is: started, with its signal handlers in place.

        Announced any earlier, a Ctrl+C sent as soon as the line appears could land before
        uvicorn handles signals and interrupt its start half-way.
        """

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                click.echo(ready)
                sys.stdout.flush()

    try:
        # A second Ctrl+C ends the graceful shutdown at once; its KeyboardInterrupt is not an error.
        with contextlib.suppress(KeyboardInterrupt):
            AnnouncingServer(config, max_connections=max_connections).run(sockets=[sock])
    finally:
        # The application closed the catalog at shutdown, unless uvicorn skipped that (a second
        # Ctrl+C, a failed start): close it now, but never under a write still running.
        app.state.close_catalog_if_idle()


# --version on every command too, as on the group.
for _command in main.commands.values():
    click.version_option(cc.__version__, "--version", prog_name="catalog-core")(_command)
