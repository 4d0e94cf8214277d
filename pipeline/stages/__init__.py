"""The DVC stages: one thin script per stage of dvc.yaml, run as `python -m pipeline.stages.<name>`."""
