"""Playbooks: load YAML keeping positions, validate (schema + meaning), typed model."""
