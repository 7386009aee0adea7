SELECT * FROM memories WHERE id = $1
