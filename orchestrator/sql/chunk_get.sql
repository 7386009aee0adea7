SELECT * FROM chunks WHERE id = $1
