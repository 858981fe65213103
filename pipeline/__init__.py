"""The contract shared by both ET3D stages: cameras, shard schema, prompts, text encoders, procedural scenes.

`teacher_dump/` and `student/` import this package and never each other.
"""
