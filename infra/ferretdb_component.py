"""FerretDB 1.24 (MongoDB wire protocol) on its SQLite backend, built once from the Go module proxy.

SQLite was measured against FerretDB's PostgreSQL backend for our mix (docs/decisions.md): inserts
cost the same (~8.6k docs/s) and it is one server fewer. The binary is a tiny Go program embedding
FerretDB (see ferretdb/main.go), built against the released module with the fixes in ``PATCHES``
applied to a copy of its source (the module cache itself is never modified).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
from collections.abc import Callable

NAME = "ferretdb"
VERSION = "1.24.2"
HERE = pathlib.Path(__file__).resolve().parent / "ferretdb"
MODULE = "github.com/FerretDB/FerretDB"

# (file in the module, text, replacement). Each is checked to apply exactly once.
PATCHES = [
    # The SQLite backend looks `_id` up (find, update, delete) with `_ferretdb_sjson->'$._id'`, but
    # builds the unique `_id` index on `_ferretdb_sjson->"_id"`: SQLite cannot match the two
    # expressions, so every lookup by `_id` scanned the whole collection. Use the index's spelling.
    (
        "internal/backends/sqlite/metadata/metadata.go",
        "IDColumn = DefaultColumn + \"->'$._id'\"",
        'IDColumn = DefaultColumn + `->"_id"`',
    ),
    # FerretDB 1.24 pushes only an exact `{_id: <string or ObjectId>}` filter down to SQLite: a
    # `{_id: {$in: [...]}}` filter (a page's documents fetched by id) read and decoded every document
    # of the collection. Push `_id: {$in: [<strings>]}` down (alone or next to other top-level
    # conditions, which are ANDed with it) as `WHERE <IDColumn> IN (?, ...)`, served by the unique
    # `_id` index; explain reports `filterPushdown: true`. Only a restriction: the handler still
    # applies the whole filter in memory to what SQLite returns, as after the equality pushdown.
    # Anything else (a non-string element, an empty or huge list, other operators next to `$in`,
    # a repeated `_id` key) is not pushed down, as before.
    (
        "internal/backends/sqlite/collection.go",
        "// InsertAll implements backends.Collection interface.\n",
        """// prepareIDInClause returns a WHERE clause (and its arguments) restricting the query to the
// filter's `_id: {$in: [...]}` when every element is a string, or an empty clause otherwise.
// Added by the lake's build (infra/ferretdb_component.py).
func prepareIDInClause(filter *types.Document) (string, []any) {
\tvar cond *types.Document

\tkeys, values := filter.Keys(), filter.Values()
\tfor i, k := range keys {
\t\tif k != "_id" {
\t\t\tcontinue
\t\t}

\t\td, ok := values[i].(*types.Document)
\t\tif !ok || cond != nil {
\t\t\treturn "", nil
\t\t}

\t\tcond = d
\t}

\tif cond.Len() != 1 || cond.Keys()[0] != "$in" {
\t\treturn "", nil
\t}

\tarr, ok := cond.Values()[0].(*types.Array)
\tif !ok || arr.Len() == 0 || arr.Len() > 10000 {
\t\treturn "", nil
\t}

\tplaceholders := make([]string, arr.Len())
\targs := make([]any, arr.Len())

\tfor i := 0; i < arr.Len(); i++ {
\t\ts, ok := must.NotFail(arr.Get(i)).(string)
\t\tif !ok {
\t\t\treturn "", nil
\t\t}

\t\tplaceholders[i] = "?"
\t\targs[i] = string(must.NotFail(sjson.MarshalSingleValue(s)))
\t}

\treturn fmt.Sprintf(` WHERE %s IN (%s)`, metadata.IDColumn, strings.Join(placeholders, ", ")), args
}

// InsertAll implements backends.Collection interface.
""",
    ),
    (  # Query: when the equality pushdown does not apply, try the `$in` one
        "internal/backends/sqlite/collection.go",
        "\tq += whereClause\n",
        '\tif whereClause == "" {\n\t\twhereClause, args = prepareIDInClause(params.Filter)\n\t}\n\n'
        "\tq += whereClause\n",
    ),
    (  # Explain: the same, and say so
        "internal/backends/sqlite/collection.go",
        "\torderByClause := prepareOrderByClause(params.Sort)\n",
        '\tif whereClause == "" {\n\t\twhereClause, args = prepareIDInClause(params.Filter)\n'
        '\t\tfilterPushdown = whereClause != ""\n\t}\n\n'
        "\torderByClause := prepareOrderByClause(params.Sort)\n",
    ),
]


def _source_hash() -> str:
    h = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        h.update((HERE / name).read_bytes())
    h.update(repr(PATCHES).encode())
    return h.hexdigest()[:16]


def _patched_source(go: str, build: pathlib.Path) -> pathlib.Path:
    """A writable copy of the FerretDB module with ``PATCHES`` applied, under ``build``."""
    info = subprocess.run(
        [go, "mod", "download", "-json", f"{MODULE}@v{VERSION}"],
        check=True,
        capture_output=True,
        text=True,
        cwd=HERE,
    )
    src = build / "ferretdb-src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(json.loads(info.stdout)["Dir"], src)
    for path in src.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    for rel, old, new in PATCHES:
        target = src / rel
        text = target.read_text()
        if text.count(old) != 1:
            raise SystemExit(f"[stack] ferretdb: patch for {rel} does not apply to FerretDB {VERSION}")
        target.write_text(text.replace(old, new))
    return src


def _binary(cache: pathlib.Path) -> pathlib.Path:
    return cache / f"ferretdb-{VERSION}" / "lake-ferretdb"


def install(cache: pathlib.Path, log: Callable[[str], None]) -> None:
    binary = _binary(cache)
    marker = binary.with_suffix(".source")
    if binary.exists() and marker.exists() and marker.read_text().strip() == _source_hash():
        return
    go = shutil.which("go")
    if go is None:
        raise SystemExit(
            "[stack] ferretdb: building it needs Go (https://go.dev/dl/ or Debian's golang package)"
        )
    log(f"building FerretDB {VERSION} from the Go module proxy (once, ~1-2 minutes)")
    build = binary.parent / "build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    for name in ("main.go", "go.mod", "go.sum"):
        shutil.copy2(HERE / name, build / name)
    src = _patched_source(go, build)
    with (build / "go.mod").open("a") as mod:
        mod.write(f"\nreplace {MODULE} => ./{src.name}\n")
    subprocess.run(
        [go, "build", "-trimpath", "-mod=mod", "-o", str(binary), "."],
        cwd=build,
        check=True,
        env={**os.environ, "CGO_ENABLED": "0"},
    )
    shutil.rmtree(build, ignore_errors=True)
    marker.write_text(_source_hash() + "\n")


def prepare(cache: pathlib.Path, data: pathlib.Path, port: int) -> None:
    (data / "sqlite").mkdir(parents=True, exist_ok=True)


def command(cache: pathlib.Path, data: pathlib.Path, port: int) -> tuple[list[str], dict[str, str]]:
    return [
        str(_binary(cache)),
        "-listen",
        f"127.0.0.1:{port}",
        "-handler",
        "sqlite",
        "-sqlite-url",
        f"file:{data / 'sqlite'}/",
    ], {}


def ready(port: int) -> bool:
    try:
        import pymongo

        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=500, connectTimeoutMS=500
        )
        try:
            client.admin.command("ping")
            return True
        finally:
            client.close()
    except Exception:
        return False
