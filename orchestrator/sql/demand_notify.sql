SELECT pg_notify('rewind_demands', $1)
