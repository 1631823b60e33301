"""The VAE Explorer app package: state, caches, figures, widgets, training jobs and uploads."""
