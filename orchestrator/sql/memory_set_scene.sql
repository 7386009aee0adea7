UPDATE memories
SET scene_description = $2, scene_mood = $3, anchor_points = $4, sound_keywords = $5,
    scene_source = $6
WHERE id = $1
