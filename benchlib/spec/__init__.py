"""What a benchmark is made of: suites (prompt versions, scenarios, schemas, policies),
rubrics, stored fixtures, the YAML reader that keeps line numbers, content hashes and the grid."""
