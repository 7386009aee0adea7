INSERT INTO memories (id, prompt, original_image_path, image_width, image_height)
VALUES ($1, $2, $3, $4, $5)
