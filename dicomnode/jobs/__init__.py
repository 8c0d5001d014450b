"""Jobs: their transitions in the catalog, the queue that carries their ids (Celery or embedded), the scheduler."""
