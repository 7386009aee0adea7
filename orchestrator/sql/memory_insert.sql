INSERT INTO memories (id, prompt, original_image_path, image_width, image_height, user_id)
VALUES ($1, $2, $3, $4, $5, $6)
