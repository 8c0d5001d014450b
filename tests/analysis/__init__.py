"""Analysis: embedded and Celery workers, volume loading."""
