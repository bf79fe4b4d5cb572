"""The system of record: SQLModel tables, the database engine, schema migrations and a
run's life in the record."""
