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
MMAP_BYTES = 1 << 30  # per database file: address space, not memory (the OS page cache backs it)

# (file in the module, text, replacement). Each is checked to apply exactly once; an empty text
# adds the file (which must not exist).
PATCHES = [
    # The SQLite backend looks `_id` up (find, update, delete) with `_ferretdb_sjson->'$._id'`, but
    # builds the unique `_id` index on `_ferretdb_sjson->"_id"`: SQLite cannot match the two
    # expressions, so every lookup by `_id` scanned the whole collection. And an index on that
    # expression makes SQLite parse each inserted document's whole JSON text to find its `_id`: 18 %
    # of FerretDB's CPU inserting curated documents (`perf record`, docs/benchmarks.md). So `_id` gets
    # a column of its own, `_ferretdb_id`, which holds exactly what lookups compare with (the `_id`
    # value as FerretDB's JSON, `sjson.MarshalSingleValue`), written with the document; the default
    # index is on that column. Tables made before (no such column) get it when FerretDB starts:
    # filled from the documents by the old expression, the index rebuilt on it (lake_idcolumn.go).
    (
        "internal/backends/sqlite/metadata/metadata.go",
        "\t// IDColumn is a SQLite path expression for _id field.\n"
        "\tIDColumn = DefaultColumn + \"->'$._id'\"",
        "\t// IDColumn is the column holding the _id field's JSON (the lake's build).\n"
        '\tIDColumn = backends.ReservedPrefix + "id"',
    ),
    (
        "internal/backends/sqlite/metadata/registry.go",
        "\tq += fmt.Sprintf(\"%[1]s TEXT NOT NULL CHECK(%[1]s != '')) STRICT\", DefaultColumn)\n",
        "\tq += fmt.Sprintf(\"%[1]s TEXT NOT NULL CHECK(%[1]s != ''), %[2]s TEXT) STRICT\",\n"
        "\t\tDefaultColumn, IDColumn)\n",
    ),
    (
        "internal/backends/sqlite/metadata/registry.go",
        """\t\tq := "CREATE "

\t\tif index.Unique {
\t\t\tq += "UNIQUE "
\t\t}

\t\tq += "INDEX %q ON %q (%s)"

\t\tcolumns := make([]string, len(index.Key))
\t\tfor i, key := range index.Key {
\t\t\tfields := strings.Split(key.Field, ".")
\t\t\tfor j, f := range fields {
\t\t\t\tfields[j] = fmt.Sprintf("%q", f)
\t\t\t}

\t\t\tcolumns[i] = fmt.Sprintf("%s->%s", DefaultColumn, strings.Join(fields, "->"))
\t\t\tif key.Descending {
\t\t\t\tcolumns[i] += " DESC"
\t\t\t}
\t\t}

\t\tq = fmt.Sprintf(
\t\t\tq,
\t\t\tc.TableName+"_"+index.Name,
\t\t\tc.TableName,
\t\t\tstrings.Join(columns, ", "),
\t\t)
""",
        "\t\tq := lakeCreateIndex(c.TableName, index) // `_id` is its own column (the lake's build)\n",
    ),
    (
        "internal/backends/sqlite/metadata/registry.go",
        "\tr.colls[dbName] = colls\n\n\treturn nil\n}\n",
        "\tr.colls[dbName] = colls\n\n"
        "\tfor _, c := range colls { // tables made before the `_id` column (the lake's build)\n"
        "\t\tif err = lakeIDColumn(ctx, db, c, r.l); err != nil {\n"
        "\t\t\treturn lazyerrors.Error(err)\n\t\t}\n\t}\n\n"
        "\treturn nil\n}\n",
    ),
    (
        "internal/backends/sqlite/metadata/lake_idcolumn.go",
        "",
        """// Added by the lake's build (infra/ferretdb_component.py).

package metadata

import (
\t"context"
\t"fmt"
\t"log/slog"
\t"strings"

\t"github.com/FerretDB/FerretDB/internal/util/fsql"
\t"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
)

// lakeCreateIndex returns the statement creating an index of a collection's table.
func lakeCreateIndex(table string, index IndexInfo) string {
\tunique := ""
\tif index.Unique {
\t\tunique = "UNIQUE "
\t}

\tcolumns := strings.Join(lakeIndexColumns(index), ", ")

\treturn fmt.Sprintf("CREATE %sINDEX %q ON %q (%s)", unique, table+"_"+index.Name, table, columns)
}

// lakeIndexColumns returns the SQLite columns (expressions) of an index: `_id` is IDColumn, any
// other field a path into the document's JSON.
func lakeIndexColumns(index IndexInfo) []string {
\tcolumns := make([]string, len(index.Key))
\tfor i, key := range index.Key {
\t\tif key.Field == "_id" {
\t\t\tcolumns[i] = IDColumn
\t\t} else {
\t\t\tfields := strings.Split(key.Field, ".")
\t\t\tfor j, f := range fields {
\t\t\t\tfields[j] = fmt.Sprintf("%q", f)
\t\t\t}

\t\t\tcolumns[i] = fmt.Sprintf("%s->%s", DefaultColumn, strings.Join(fields, "->"))
\t\t}

\t\tif key.Descending {
\t\t\tcolumns[i] += " DESC"
\t\t}
\t}

\treturn columns
}

// lakeIDColumn gives a table made before the `_id` column that column, in one transaction: added,
// filled from each document by the expression the old index used, and every index of the
// collection with an `_id` key rebuilt on it. In a table that has the column, the rows an older
// build wrote since (without the column: NULL) are filled the same way.
func lakeIDColumn(ctx context.Context, db *fsql.DB, c *Collection, l *slog.Logger) error {
\tvar n int
\tq := "SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?"
\tif err := db.QueryRowContext(ctx, q, c.TableName, IDColumn).Scan(&n); err != nil {
\t\treturn lazyerrors.Error(err)
\t}

\tif n > 0 {
\t\tq = "UPDATE %q SET %[2]s = %[3]s->'$._id' WHERE %[2]s IS NULL"
\t\tq = fmt.Sprintf(q, c.TableName, IDColumn, DefaultColumn)
\t\tif _, err := db.ExecContext(ctx, q); err != nil {
\t\t\treturn lazyerrors.Error(err)
\t\t}

\t\treturn nil
\t}

\tmsg := "adding the _id column to a table made before it (once)"
\tl.WarnContext(ctx, msg, slog.String("table", c.TableName))

\treturn db.InTransaction(ctx, func(tx *fsql.Tx) error {
\t\tstatements := []string{
\t\t\tfmt.Sprintf("ALTER TABLE %q ADD COLUMN %s TEXT", c.TableName, IDColumn),
\t\t\tfmt.Sprintf("UPDATE %q SET %s = %s->'$._id'", c.TableName, IDColumn, DefaultColumn),
\t\t}

\t\tfor _, index := range c.Settings.Indexes {
\t\t\tid := false
\t\t\tfor _, key := range index.Key {
\t\t\t\tid = id || key.Field == "_id"
\t\t\t}

\t\t\tif !id {
\t\t\t\tcontinue
\t\t\t}

\t\t\tstatements = append(statements,
\t\t\t\tfmt.Sprintf("DROP INDEX IF EXISTS %q", c.TableName+"_"+index.Name),
\t\t\t\tlakeCreateIndex(c.TableName, index),
\t\t\t)
\t\t}

\t\tfor _, q := range statements {
\t\t\tif _, err := tx.ExecContext(ctx, q); err != nil {
\t\t\t\treturn lazyerrors.Error(err)
\t\t\t}
\t\t}

\t\treturn nil
\t})
}
""",
    ),
    (
        "internal/backends/sqlite/metadata/lake_idcolumn_test.go",
        "",
        """// Added by the lake's build (infra/ferretdb_component.py).

package metadata

import (
\t"fmt"
\t"testing"

\t"github.com/stretchr/testify/require"

\t"github.com/FerretDB/FerretDB/internal/util/state"
\t"github.com/FerretDB/FerretDB/internal/util/testutil"
)

// A table made before the `_id` column gets it when the registry loads its database: filled with
// what lookups by `_id` compare with, the default index rebuilt on it (still unique), once.
func TestLakeIDColumnMigratesTablesMadeBefore(t *testing.T) {
\tt.Parallel()
\tctx := testutil.Ctx(t)

\tsp, err := state.NewProvider("")
\trequire.NoError(t, err)

\tr, err := NewRegistry(testutil.TestSQLiteURI(t, ""), 100, testutil.Logger(t), sp)
\trequire.NoError(t, err)
\tt.Cleanup(r.Close)

\tdbName := testutil.DatabaseName(t)
\tdb, err := r.DatabaseGetOrCreate(ctx, dbName)
\trequire.NoError(t, err)

\ttable := "old_00000001"
\tsettings := Settings{
\t\tUUID:    "00000000-0000-0000-0000-000000000001",
\t\tIndexes: []IndexInfo{{Name: "_id_", Key: []IndexKeyPair{{Field: "_id"}}, Unique: true}},
\t}
\tfor _, q := range []string{
\t\tfmt.Sprintf("CREATE TABLE %q (%[2]s TEXT NOT NULL CHECK(%[2]s != '')) STRICT", table, DefaultColumn),
\t\tfmt.Sprintf(`CREATE UNIQUE INDEX %q ON %q (%s->"_id")`, table+"__id_", table, DefaultColumn),
\t} {
\t\t_, err = db.ExecContext(ctx, q)
\t\trequire.NoError(t, err)
\t}

\tq := fmt.Sprintf("INSERT INTO %q (name, table_name, settings) VALUES (?, ?, ?)", metadataTableName)
\t_, err = db.ExecContext(ctx, q, "old", table, settings)
\trequire.NoError(t, err)

\tdocs := []string{
\t\t`{"$s": {"p": {"_id": {"t": "string"}}, "$k": ["_id"]}, "_id": "a\\"b"}`,
\t\t`{"$s": {"p": {"_id": {"t": "int"}}, "$k": ["_id"]}, "_id": 42}`,
\t\t`{"$s": {"p": {"_id": {"t": "objectId"}}, "$k": ["_id"]}, "_id": "000102030405060708091011"}`,
\t}
\tfor _, doc := range docs {
\t\t_, err = db.ExecContext(ctx, fmt.Sprintf("INSERT INTO %q (%s) VALUES (?)", table, DefaultColumn), doc)
\t\trequire.NoError(t, err)
\t}

\tfor range 2 { // the second load finds the column and changes nothing
\t\trequire.NoError(t, r.initCollections(ctx, dbName, db))

\t\trows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %q ORDER BY rowid", IDColumn, table))
\t\trequire.NoError(t, err)

\t\tvar ids []string
\t\tfor rows.Next() {
\t\t\tvar id string
\t\t\trequire.NoError(t, rows.Scan(&id))
\t\t\tids = append(ids, id)
\t\t}
\t\trequire.NoError(t, rows.Err())
\t\trequire.Equal(t, []string{`"a\\"b"`, `42`, `"000102030405060708091011"`}, ids)

\t\tvar sql string
\t\tq := "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?"
\t\trow := db.QueryRowContext(ctx, q, table+"__id_")
\t\trequire.NoError(t, row.Scan(&sql))
\t\trequire.Equal(t, fmt.Sprintf(`CREATE UNIQUE INDEX %q ON %q (%s)`, table+"__id_", table, IDColumn), sql)
\t}

\t// a row an older build wrote meanwhile (no column value) is filled at the next load
\tlate := `{"$s": {"p": {"_id": {"t": "string"}}, "$k": ["_id"]}, "_id": "late"}`
\t_, err = db.ExecContext(ctx, fmt.Sprintf("INSERT INTO %q (%s) VALUES (?)", table, DefaultColumn), late)
\trequire.NoError(t, err)
\trequire.NoError(t, r.initCollections(ctx, dbName, db))

\tvar id string
\tq = fmt.Sprintf("SELECT %s FROM %q WHERE %s->>'$._id' = 'late'", IDColumn, table, DefaultColumn)
\trequire.NoError(t, db.QueryRowContext(ctx, q).Scan(&id))
\trequire.Equal(t, `"late"`, id)

\tdup := `{"$s": {"p": {"_id": {"t": "int"}}, "$k": ["_id"]}, "_id": 42}`
\tq = fmt.Sprintf("INSERT INTO %q (%s, %s) VALUES (?, ?)", table, DefaultColumn, IDColumn)
\t_, err = db.ExecContext(ctx, q, dup, "42")
\trequire.ErrorContains(t, err, "UNIQUE constraint failed")
}
""",
    ),
    (
        "internal/backends/sqlite/insert.go",
        """\t\tif capped {
\t\t\trows[i] = "(?, ?)"
\t\t\targs = append(args, doc.RecordID(), string(b))

\t\t\tcontinue
\t\t}

\t\trows[i] = "(?)"
\t\targs = append(args, string(b))
\t}

\tcolumns := metadata.DefaultColumn
\tif capped {
\t\tcolumns = strings.Join([]string{metadata.RecordIDColumn, metadata.DefaultColumn}, ", ")
\t}
""",
        """\t\t// the `_id` column: what lookups by `_id` compare with (the lake's build)
\t\tvar id any
\t\tif v, _ := doc.Get("_id"); v != nil {
\t\t\tj, err := sjson.MarshalSingleValue(v)
\t\t\tif err != nil {
\t\t\t\treturn "", nil, lazyerrors.Error(err)
\t\t\t}

\t\t\tid = string(j)
\t\t}

\t\tif capped {
\t\t\trows[i] = "(?, ?, ?)"
\t\t\targs = append(args, doc.RecordID(), string(b), id)

\t\t\tcontinue
\t\t}

\t\trows[i] = "(?, ?)"
\t\targs = append(args, string(b), id)
\t}

\tcolumns := metadata.DefaultColumn + ", " + metadata.IDColumn
\tif capped {
\t\tcolumns = strings.Join([]string{metadata.RecordIDColumn, metadata.DefaultColumn, metadata.IDColumn}, ", ")
\t}
""",
    ),
    (  # its free pages after deleting rows 10-39 of 50: rows carry the `_id` column now, and with
        # their new length those 30 no longer empty a whole page; 300 of 500 do, as 30 of 50 did
        "internal/backends/sqlite/database_test.go",
        "nInsert, deleteFromIndex, deleteToIndex := 50, 10, 40",
        "nInsert, deleteFromIndex, deleteToIndex := 500, 100, 400 // the lake's build",
    ),
    (
        "internal/backends/sqlite/metadata/registry_test.go",
        """\t\t\t`CREATE UNIQUE INDEX "%s" ON "%s" (_ferretdb_sjson->"_id")`,\n""",
        """\t\t\t`CREATE UNIQUE INDEX "%s" ON "%s" (_ferretdb_id)`, // the lake's build\n""",
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
    # Reading documents (a page of `/curated`) spent 60 % of FerretDB's CPU in sjson.Unmarshal, the
    # SQLite backend's JSON-to-document decoding (profiled with -pprof-addr, docs/benchmarks.md):
    # each document, each nested document and array, and each scalar got its own json.Decoder,
    # which copies its input into growing buffers, and every document's schema (`$s`, as large as
    # the document) was decoded again by reflection. Decode in place with json.Unmarshal, scalars
    # directly, and a schema once per distinct schema text (cached, bounded). Same values, the same
    # Go types; malformed input (FerretDB never writes any) is still refused, with json.Unmarshal's
    # wording (FerretDB's own tests of these packages pass but three that compare that wording:
    # UPSTREAM_TESTS_SKIPPED, run by tests/integration/test_ferretdb_build.py).
    (
        "internal/handler/sjson/lake_decode.go",
        "",
        """// Added by the lake's build (infra/ferretdb_component.py).

package sjson

import (
\t"bytes"
\t"encoding/json"
\t"sync"

\t"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
)

// lakeSchemaCacheMax bounds the cache: documents of a collection have few distinct schemas.
const lakeSchemaCacheMax = 10000

var (
\tlakeSchemasM sync.RWMutex
\tlakeSchemas  = make(map[string]*schema)
)

// lakeScalar decodes one scalar value of type T in place (no json.Decoder and buffer per value).
func lakeScalar[T any](data []byte) (any, error) {
\tvar v T
\tif err := json.Unmarshal(data, &v); err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}

\treturn v, nil
}

// lakeCachedSchema decodes a document's `$s` schema, once per distinct schema text.
// The returned schema is shared: it is only read, never modified.
func lakeCachedSchema(raw []byte) (*schema, error) {
\tlakeSchemasM.RLock()
\tsch, ok := lakeSchemas[string(raw)]
\tlakeSchemasM.RUnlock()

\tif ok {
\t\treturn sch, nil
\t}

\tr := bytes.NewReader(raw)
\tdec := json.NewDecoder(r)
\tdec.DisallowUnknownFields()

\tsch = new(schema)
\tif err := dec.Decode(sch); err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}

\tif err := checkConsumed(dec, r); err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}

\tlakeSchemasM.Lock()
\tif len(lakeSchemas) < lakeSchemaCacheMax {
\t\tlakeSchemas[string(raw)] = sch
\t}
\tlakeSchemasM.Unlock()

\treturn sch, nil
}
""",
    ),
    (
        "internal/handler/sjson/sjson.go",
        """\tvar v map[string]json.RawMessage
\tr := bytes.NewReader(data)
\tdec := json.NewDecoder(r)

\terr := dec.Decode(&v)
\tif err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}

\tif err = checkConsumed(dec, r); err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}

\t// decode schema from the $s field of the document
\tjsch, ok := v["$s"]
\tif !ok {
\t\treturn nil, lazyerrors.Errorf("schema is not set")
\t}

\tvar sch schema
\tr = bytes.NewReader(jsch)
\tdec = json.NewDecoder(r)
\tdec.DisallowUnknownFields()

\tif err := dec.Decode(&sch); err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}

\tif err := checkConsumed(dec, r); err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}
""",
        """\tvar v map[string]json.RawMessage
\tif err := json.Unmarshal(data, &v); err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}

\t// decode schema from the $s field of the document
\tjsch, ok := v["$s"]
\tif !ok {
\t\treturn nil, lazyerrors.Errorf("schema is not set")
\t}

\tsch, err := lakeCachedSchema(jsch)
\tif err != nil {
\t\treturn nil, lazyerrors.Error(err)
\t}
""",
    ),
    (
        "internal/handler/sjson/sjson.go",
        "\tvar res sjsontype\n\tvar err error\n\n\tswitch sch.Type {\n",
        """\tswitch sch.Type { // scalars decoded in place (added by the lake's build)
\tcase elemTypeString:
\t\treturn lakeScalar[string](data)
\tcase elemTypeInt:
\t\treturn lakeScalar[int32](data)
\tcase elemTypeLong:
\t\treturn lakeScalar[int64](data)
\tcase elemTypeDouble:
\t\treturn lakeScalar[float64](data)
\tcase elemTypeBool:
\t\treturn lakeScalar[bool](data)
\tcase elemTypeDate:
\t\tms, err := lakeScalar[int64](data)
\t\tif err != nil {
\t\t\treturn nil, err
\t\t}

\t\treturn time.UnixMilli(ms.(int64)), nil
\t}

\tvar res sjsontype
\tvar err error

\tswitch sch.Type {
""",
    ),
    (
        "internal/handler/sjson/document.go",
        """\tr := bytes.NewReader(data)
\tdec := json.NewDecoder(r)

\tvar rawMessages map[string]json.RawMessage
\tif err := dec.Decode(&rawMessages); err != nil {
\t\treturn lazyerrors.Error(err)
\t}

\tif err := checkConsumed(dec, r); err != nil {
\t\treturn lazyerrors.Error(err)
\t}
""",
        """\tvar rawMessages map[string]json.RawMessage
\tif err := json.Unmarshal(data, &rawMessages); err != nil { // in place (the lake's build)
\t\treturn lazyerrors.Error(err)
\t}
""",
    ),
    (
        "internal/handler/sjson/array.go",
        """\tr := bytes.NewReader(data)
\tdec := json.NewDecoder(r)

\tvar rawMessages []json.RawMessage
\tif err := dec.Decode(&rawMessages); err != nil {
\t\treturn lazyerrors.Error(err)
\t}

\tif err := checkConsumed(dec, r); err != nil {
\t\treturn lazyerrors.Error(err)
\t}
""",
        """\tvar rawMessages []json.RawMessage
\tif err := json.Unmarshal(data, &rawMessages); err != nil { // in place (the lake's build)
\t\treturn lazyerrors.Error(err)
\t}
""",
    ),
    # Without a projection, each document read was still deep-copied by the projection step (9 % of
    # FerretDB's CPU on a page): pass documents through when there is nothing to project.
    (
        "internal/handler/common/projection_iterator.go",
        "\tprojected, err := ProjectDocument(doc, iter.projection, iter.filter, iter.inclusion)\n",
        "\tif iter.projection == nil || iter.projection.Len() == 0 { // the lake's build\n"
        "\t\treturn unused, doc, nil\n\t}\n\n"
        "\tprojected, err := ProjectDocument(doc, iter.projection, iter.filter, iter.inclusion)\n",
    ),
    # Every SQL statement logs its arguments at debug level through `l.With(...)`, and slog's text
    # handler formats (quotes) attributes as soon as they are attached, before the level is checked:
    # each insert formatted its whole batch of documents' JSON for a message then dropped, ≈ 20 % of
    # FerretDB's CPU inserting curated documents (sampled with `perf record`, docs/benchmarks.md).
    # A logger that does not log debug messages is replaced by one that discards everything.
    (
        "internal/util/fsql/db.go",
        "\t\tl:                logging.WithName(l, name),\n",
        "\t\tl:                lakeQuiet(logging.WithName(l, name)),\n",
    ),
    (
        "internal/util/fsql/lake_quiet.go",
        "",
        """// Added by the lake's build (infra/ferretdb_component.py).

package fsql

import (
\t"context"
\t"log/slog"
)

// lakeQuiet returns l, or a logger that discards everything when l does not log debug messages
// (FerretDB's level is set once, at start): queries log their arguments at debug level through
// l.With, which formats them even when the message is then dropped.
func lakeQuiet(l *slog.Logger) *slog.Logger {
\tif l.Enabled(context.Background(), slog.LevelDebug) {
\t\treturn l
\t}

\treturn slog.New(lakeDiscard{})
}

// lakeDiscard is a slog.Handler that handles nothing.
type lakeDiscard struct{}

func (lakeDiscard) Enabled(context.Context, slog.Level) bool  { return false }
func (lakeDiscard) Handle(context.Context, slog.Record) error { return nil }
func (d lakeDiscard) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d lakeDiscard) WithGroup(string) slog.Handler           { return d }
""",
    ),
    # Every document stored is marshalled with a schema naming each key, and each key and string
    # value went through encoding/json's reflection (11 % of FerretDB's CPU inserting curated
    # documents, sampled with `perf record`). Strings of printable ASCII that JSON does not escape
    # (json.Marshal also escapes <, > and &) are quoted directly; any other goes to json.Marshal.
    (
        "internal/handler/sjson/lake_quote.go",
        "",
        """// Added by the lake's build (infra/ferretdb_component.py).

package sjson

import "encoding/json"

// lakeQuote returns json.Marshal(s): directly for printable ASCII that needs no escape, else by
// json.Marshal itself.
func lakeQuote(s string) ([]byte, error) {
\tfor i := 0; i < len(s); i++ {
\t\tif c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\\\' || c == '<' || c == '>' || c == '&' {
\t\t\treturn json.Marshal(s)
\t\t}
\t}

\tb := make([]byte, 0, len(s)+2)
\tb = append(b, '"')
\tb = append(b, s...)

\treturn append(b, '"'), nil
}

// lakeQuoteAll returns json.Marshal(keys) for a list of strings.
func lakeQuoteAll(keys []string) ([]byte, error) {
\tb := []byte{'['}

\tfor i, k := range keys {
\t\tif i > 0 {
\t\t\tb = append(b, ',')
\t\t}

\t\tq, err := lakeQuote(k)
\t\tif err != nil {
\t\t\treturn nil, err
\t\t}

\t\tb = append(b, q...)
\t}

\treturn append(b, ']'), nil
}
""",
    ),
    (
        "internal/handler/sjson/lake_quote_test.go",
        "",
        """// Added by the lake's build (infra/ferretdb_component.py).

package sjson

import (
\t"bytes"
\t"encoding/json"
\t"testing"
)

func TestLakeQuoteIsJSONMarshal(t *testing.T) {
\tcases := []string{"", "_id", "created_at", "a b", "é", "😀", "\\u2028", "x\\xffy", "a\\x00b", "\\x7f"}
\tfor c := 0; c < 128; c++ {
\t\tcases = append(cases, string(rune(c)), "k"+string(rune(c))+"v")
\t}

\tfor _, s := range cases {
\t\twant, err := json.Marshal(s)
\t\tif err != nil {
\t\t\tt.Fatal(err)
\t\t}

\t\tgot, err := lakeQuote(s)
\t\tif err != nil || !bytes.Equal(got, want) {
\t\t\tt.Fatalf("lakeQuote(%q) = %s, %v; json.Marshal: %s", s, got, err, want)
\t\t}
\t}

\twant, _ := json.Marshal(cases)
\tif got, err := lakeQuoteAll(cases); err != nil || !bytes.Equal(got, want) {
\t\tt.Fatalf("lakeQuoteAll = %s, %v; json.Marshal: %s", got, err, want)
\t}

\tif got, _ := lakeQuoteAll([]string{}); string(got) != "[]" {
\t\tt.Fatalf("lakeQuoteAll of no keys = %s", got)
\t}
}
""",
    ),
    (
        "internal/handler/sjson/schema.go",
        "\t\tif b, err = json.Marshal(key); err != nil {\n",
        "\t\tif b, err = lakeQuote(key); err != nil {\n",
    ),
    (
        "internal/handler/sjson/schema.go",
        "\tb, err := json.Marshal(keys)\n",
        "\tb, err := lakeQuoteAll(keys)\n",
    ),
    (
        "internal/handler/sjson/string.go",
        "\tres, err := json.Marshal(string(*str))\n",
        "\tres, err := lakeQuote(string(*str))\n",
    ),
    # Every iterator, row set and cursor (several per document read) was registered in a pprof
    # profile with its creation stack (runtime.Callers) and a finalizer, a leak check for FerretDB's
    # own tests: 8 % of its CPU reading a page. Off (the lake's build).
    (
        "internal/util/resource/resource.go",
        "func Track(obj any, token *Token) {\n\tcheckArgs(obj, token)\n",
        "func Track(obj any, token *Token) {\n\tif !lakeTrackResources {\n\t\treturn\n\t}\n\n"
        "\tcheckArgs(obj, token)\n",
    ),
    (
        "internal/util/resource/resource.go",
        "func Untrack(obj any, token *Token) {\n\tcheckArgs(obj, token)\n",
        "func Untrack(obj any, token *Token) {\n\tif !lakeTrackResources {\n\t\treturn\n\t}\n\n"
        "\tcheckArgs(obj, token)\n",
    ),
    (
        "internal/util/resource/resource.go",
        "// Token should be a field of a tracked object.\n",
        "// lakeTrackResources turns Track and Untrack into no-ops (the lake's build).\n"
        "const lakeTrackResources = false\n\n"
        "// Token should be a field of a tracked object.\n",
    ),
    # Documents per insert transaction and statement: FerretDB's package fixes it at 100, so the
    # curator's batch of 5,000 documents was 50 transactions, each with its commit (WAL frames
    # written, a checkpoint now and then): 10-12 % of FerretDB's insert CPU in Go's profiler. At
    # 1,000 per transaction FerretDB spent ≈ 8 % less CPU per document inserted, offline
    # (docs/benchmarks.md). A batch that fails (a duplicate `_id`) is still retried one document at
    # a time, as before: up to 1,000 single inserts instead of 100. At most 10,000: each document
    # binds two SQL variables, and SQLite allows 32,766 per statement.
    (
        "ferretdb/ferretdb.go",
        "\tSQLiteURL string // For example: `file:data/`.\n}\n",
        "\tSQLiteURL string // For example: `file:data/`.\n\n"
        "\t// InsertBatchSize is the number of documents per insert transaction and statement\n"
        "\t// (the lake's build); 0 keeps FerretDB's 100.\n"
        "\tInsertBatchSize int\n}\n",
    ),
    (
        "ferretdb/ferretdb.go",
        "\t\t\tBatchSize:               100,\n",
        "\t\t\tBatchSize:               lakeInsertBatchSize(config.InsertBatchSize),\n",
    ),
    (
        "ferretdb/lake_batch.go",
        "",
        """// Added by the lake's build (infra/ferretdb_component.py).

package ferretdb

// lakeInsertBatchSize is Config.InsertBatchSize, or FerretDB's own 100 when it is not set, at most
// 10,000 (each document binds two SQL variables; SQLite allows 32,766 per statement).
func lakeInsertBatchSize(n int) int {
\tif n < 1 {
\t\treturn 100
\t}

\treturn min(n, 10000)
}
""",
    ),
]


# FerretDB's own unit tests of the packages the patches touch, and the three that compare the
# wording of a malformed-JSON error (json.Decoder's "unexpected EOF" vs json.Unmarshal's "unexpected
# end of JSON input"), skipped because that wording is all the patches change for them.
UPSTREAM_TEST_PACKAGES = (
    "./internal/handler/sjson/",
    "./internal/handler/common/",
    "./internal/backends/sqlite/...",
)
UPSTREAM_TESTS_SKIPPED = ("TestUnmarshalInvalid/ExtraData", "TestArray/EOF", "TestDocument/EOF")


def run_upstream_tests(workdir: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """Run FerretDB's own tests of the patched packages on a patched copy of its source."""
    go = shutil.which("go")
    if go is None:
        raise SystemExit("[stack] ferretdb: its tests need Go")
    src = _patched_source(go, workdir)
    (src / ".git").mkdir()  # FerretDB's test helpers locate the repository root by it
    (src / "build" / "version" / "version.txt").write_text(f"v{VERSION}\n")
    return subprocess.run(
        [go, "test", "-count=1", "-skip", "|".join(UPSTREAM_TESTS_SKIPPED), *UPSTREAM_TEST_PACKAGES],
        cwd=src,
        capture_output=True,
        text=True,
        env={**os.environ, "CGO_ENABLED": "0"},
    )


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
        if not old:  # a file of ours, added to the package
            if target.exists():
                raise SystemExit(f"[stack] ferretdb: {rel} already exists in FerretDB {VERSION}")
            target.write_text(new)
            continue
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
        # SQLite reads its pages through a memory map instead of a pread() system call and a copy
        # per page (a page of `/curated` reads ~150 pages of the collection and its `_id` index).
        f"file:{data / 'sqlite'}/?_pragma=mmap_size({MMAP_BYTES})",
        # 1,000 documents per insert transaction, not 100 (the PATCHES entry says why)
        "-insert-batch-size",
        str(insert_batch()),
        # Go's profiler (`go tool pprof http://<addr>/debug/pprof/profile`), for benchmarks only.
        *(["-pprof-addr", addr] if (addr := os.environ.get("LAKE_FERRETDB_PPROF_ADDR")) else []),
    ], {
        # FerretDB's live Go heap is ~5 MB, so with Go's default (GOGC=100) it collected garbage
        # every ~4 MB allocated: 20 % of its CPU reading a page of documents. A heap target of
        # 11x the live heap, capped by a soft memory limit (docs/benchmarks.md, "FerretDB").
        "GOGC": os.environ.get("LAKE_FERRETDB_GOGC", "1000"),
        "GOMEMLIMIT": os.environ.get("LAKE_FERRETDB_GOMEMLIMIT", "1GiB"),
    }


def insert_batch() -> int:
    """``LAKE_FERRETDB_INSERT_BATCH``: documents per insert transaction, 1 to 10,000 (default 1,000)."""
    text = os.environ.get("LAKE_FERRETDB_INSERT_BATCH") or "1000"
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise SystemExit(f"[stack] ferretdb: LAKE_FERRETDB_INSERT_BATCH must be 1 to 10000, not {text!r}")
    return int(text)


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
