/* SPDX-License-Identifier: MIT */
/*
 * migrate: livetap's versioned SQL schema, applied at start-up.
 *
 * The migrations are the files persister/sql/NNN_name.sql, embedded into the
 * library at build time (persister/embed-sql.py), so an installed binary needs
 * no source tree. lt_migrate_apply brings the database (in the first schema of
 * the connection's search_path) up to the newest version: it takes a
 * PostgreSQL advisory lock so that two programs starting together do not race,
 * applies each missing migration in its own transaction, records it in
 * schema_migrations (version, name, checksum, applied_at), and refuses to go on
 * if a migration that was applied earlier has a different checksum now (the
 * file was edited after it shipped).
 *
 * Other programs' tests (the fetcher supervisor, the API) call lt_migrate_apply
 * to get the schema: link the lt_persister library (persister_dep).
 */
#ifndef LT_MIGRATE_H
#define LT_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "common/err.h"

struct lt_migration {
	int version;	      /* NNN from the file name */
	const char *name;     /* the file name's rest, without .sql */
	const char *checksum; /* SHA-256 of the file, 64 hex digits */
	const char *sql;
};

/* The embedded migrations, sorted by version (generated). */
extern const struct lt_migration lt_migrate_embedded[];
extern const size_t lt_migrate_embedded_count;

/* Apply the embedded migrations on conn (which stays owned by the caller and
 * must not be inside a transaction). Returns LT_OK when the schema is current,
 * LT_ECONN if the connection failed, LT_ECONFIG if an applied migration's
 * checksum differs from the embedded one or the database has a version newer
 * than this binary knows, LT_EDB if a migration failed (it is rolled back);
 * e (may be NULL) says which version and why. */
int lt_migrate_apply(PGconn *conn, struct lt_error *e);

/* The same for an explicit list (sorted by version, n entries); tests use it
 * to exercise a failing or edited migration. */
int lt_migrate_apply_list(PGconn *conn, const struct lt_migration *list, size_t n, struct lt_error *e);

/* The highest applied version in conn's schema, 0 if none or no table;
 * -1 on a connection or query error. */
int lt_migrate_current(PGconn *conn);

#endif
