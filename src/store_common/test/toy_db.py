"""A minimal TransactionalDb for the tests of sqlite_db and run_node (and their driver)."""
from store_common.sqlite_db import TransactionalDb


class ToyError(RuntimeError):
    pass


class ToyDb(TransactionalDb):
    KIND = 'toy'
    SCHEMA = ('CREATE TABLE schema_version (version INTEGER NOT NULL); '
              'CREATE TABLE rows (row_id INTEGER PRIMARY KEY, body TEXT NOT NULL)')
    TABLES = ('schema_version', 'rows')
    Error = ToyError
