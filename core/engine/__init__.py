"""The stage table and what runs it: the pipeline, the cache and its keys, where work runs, jobs."""
