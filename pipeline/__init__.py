"""Fine-tuning experiments for Hugging Face transformers: DVC stages, task adapters, MLflow."""
