"""The reading worklist: items and their transitions, the ranking (policy and SQL), the shared snapshot, the watcher,
enlisting completed studies and the flags AI results set."""
