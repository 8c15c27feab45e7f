"""Experiment management: experiment tables over rows and seeds, hyper-parameter sweeps (Optuna),
the process pool that runs them, reports, and the demo. Uses training and inference; neither uses it."""
