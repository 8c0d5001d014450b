"""Celery app and analysis tasks (see issue: analysis pipeline).

Workers load a study from storage, run a model from `models/`, and hand the
findings to `dicomnode.results`. `dicomnode/` never imports this package; it
hands work over by task name.
"""
