"""Rendering recipes in batch: options, plan and resume, the manifest, the worker pool and its launchers."""
