"""Running declared work: the repository, runs and steps, contexts, output capture and the
parallel-executor worker. Scheduling itself lives in the compiled core.
"""
