"""Qt item models over service results: ids plus a row cache, rows fetched through a service (never SQL)."""
